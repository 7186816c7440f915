//! Finding tracefs (mounting it when nobody has) and reading tracepoint `format` files,
//! which give each field's offset in the record for this very kernel.

use std::path::{Path, PathBuf};

use super::Error;

const CANDIDATES: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount point, mounting it at `/sys/kernel/tracing` if none is mounted
/// (hardened hosts and minimal VMs often have it unmounted).
pub(crate) fn root() -> Result<PathBuf, Error> {
    if let Some(found) = CANDIDATES.iter().map(PathBuf::from).find(|p| p.join("events").is_dir()) {
        return Ok(found);
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid NUL-terminated strings; mount(2) has no other preconditions.
    let rc = unsafe {
        libc::mount(c"tracefs".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null())
    };
    if rc == 0 {
        return Ok(PathBuf::from("/sys/kernel/tracing"));
    }
    Err(Error::NoTracefs(std::io::Error::last_os_error()))
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) offset: u32,
    pub(crate) size: u32,
}

/// Parses a `format` file's `field:` lines.
pub(crate) fn parse_format(text: &str) -> Vec<Field> {
    text.lines()
        .filter_map(|line| {
            let mut decl = None;
            let mut offset = None;
            let mut size = None;
            for part in line.trim().split(';') {
                let part = part.trim();
                if let Some(d) = part.strip_prefix("field:") {
                    decl = Some(d.trim());
                } else if let Some(o) = part.strip_prefix("offset:") {
                    offset = o.trim().parse().ok();
                } else if let Some(s) = part.strip_prefix("size:") {
                    size = s.trim().parse().ok();
                }
            }
            // The name is the last word of the declaration, without any `[N]` suffix.
            let name = decl?.rsplit([' ', '*']).next()?.split('[').next()?.to_string();
            Some(Field { name, offset: offset?, size: size? })
        })
        .collect()
}

/// Reads the fields of tracepoint `category:name`.
pub(crate) fn format(root: &Path, category: &str, name: &str) -> Result<Vec<Field>, Error> {
    let path = root.join("events").join(category).join(name).join("format");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::TracepointFormat {
        tracepoint: format!("{category}:{name}"),
        source,
    })?;
    Ok(parse_format(&text))
}

/// The offset of `field`, checking it has the size the program reads.
pub(crate) fn offset_of(
    fields: &[Field],
    tracepoint: &str,
    field: &str,
    size: u32,
) -> Result<u32, Error> {
    fields
        .iter()
        .find(|f| f.name == field && f.size == size)
        .map(|f| f.offset)
        .ok_or_else(|| Error::MissingField(format!("{tracepoint} field {field} ({size} bytes)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 6.1 format of sock:inet_sock_set_state, verbatim.
    const FORMAT_6_1: &str = "name: inet_sock_set_state
ID: 1405
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: \"family=%s\"
";

    #[test]
    fn parses_the_6_1_inet_sock_set_state_format() {
        let fields = parse_format(FORMAT_6_1);
        let tp = "sock:inet_sock_set_state";
        assert_eq!(offset_of(&fields, tp, "skaddr", 8).ok(), Some(8));
        assert_eq!(offset_of(&fields, tp, "oldstate", 4).ok(), Some(16));
        assert_eq!(offset_of(&fields, tp, "newstate", 4).ok(), Some(20));
        assert_eq!(offset_of(&fields, tp, "protocol", 2).ok(), Some(30));
        assert_eq!(offset_of(&fields, tp, "daddr_v6", 16).ok(), Some(56));
        // A size mismatch is an error, not a silent misread.
        assert!(offset_of(&fields, tp, "oldstate", 8).is_err());
        assert!(offset_of(&fields, tp, "nosuch", 4).is_err());
    }
}
