//! The kernel-side filters, built from the command line. Limits the kernel side has (how
//! many pids and port ranges) and paths that do not resolve (`--cgroup`, and `--btf`,
//! checked here with them) are usage errors (exit 2).

use std::path::Path;

use tracer_common::{
    filter::{Filter, PortSet, MAX_PIDS, MAX_PORT_RANGES},
    kernel::{AF_INET, AF_INET6},
};

use crate::cli::Cli;

/// A mistake on the command line found after parsing: exit code 2, like clap's own.
#[derive(Debug, thiserror::Error)]
#[error("{0} (see --help)")]
pub(crate) struct UsageError(pub(crate) String);

/// `statfs` magic of cgroup v2 (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

pub(crate) fn from_cli(cli: &Cli) -> Result<Filter, UsageError> {
    options_apply_to_events(cli)?;
    if let Some(path) = &cli.btf {
        btf_file(path)?;
    }
    let mut filter = Filter { self_pid: std::process::id(), ..Filter::ANY };
    if cli.pid.len() > MAX_PIDS {
        return Err(UsageError(format!("at most {MAX_PIDS} --pid values")));
    }
    for (slot, pid) in filter.pids.iter_mut().zip(&cli.pid) {
        *slot = *pid;
    }
    filter.pid_count = cli.pid.len() as u32;
    for (set, ranges, flag) in [
        (&mut filter.ports, &cli.port, "--port"),
        (&mut filter.lports, &cli.lport, "--lport"),
        (&mut filter.rports, &cli.rport, "--rport"),
    ] {
        *set = PortSet::default();
        for range in ranges {
            if !set.push(*range) {
                return Err(UsageError(format!("at most {MAX_PORT_RANGES} {flag} values")));
            }
        }
    }
    if let Some(comm) = &cli.comm {
        filter.comm[..comm.0.len()].copy_from_slice(&comm.0);
        filter.has_comm = 1;
    }
    if let Some(uid) = cli.uid {
        filter.uid = uid;
        filter.has_uid = 1;
    }
    filter.family = if cli.ipv4 {
        u32::from(AF_INET)
    } else if cli.ipv6 {
        u32::from(AF_INET6)
    } else {
        0
    };
    if let Some(path) = &cli.cgroup {
        filter.cgroup_id = cgroup_id(path)?;
    }
    if let Some(netns) = &cli.netns {
        filter.netns = netns_inode(netns)?;
    }
    if let Some(min) = cli.min_latency {
        filter.min_latency_ns = u64::try_from(min.as_nanos()).unwrap_or(u64::MAX);
    }
    filter.failed_only = u32::from(cli.failed);
    Ok(filter)
}

/// Options that act on one kind of event need it among those asked for with `-e`: left
/// alone they would do nothing, silently (`--failed -e close` would print every close).
fn options_apply_to_events(cli: &Cli) -> Result<(), UsageError> {
    use crate::cli::{BytesArg, EventArg};
    let Some(events) = &cli.events else { return Ok(()) };
    let needs = [
        (cli.failed, "--failed", EventArg::Connect, "connect"),
        (cli.min_latency.is_some(), "--min-latency", EventArg::Connect, "connect"),
        (
            cli.bytes.is_some_and(|b| b != BytesArg::Socket),
            "--bytes calls",
            EventArg::Close,
            "close",
        ),
    ];
    match needs.into_iter().find(|(given, _, kind, _)| {
        *given && !events.contains(kind) && !events.contains(&EventArg::All)
    }) {
        Some((_, option, _, name)) => {
            Err(UsageError(format!("{option} applies to {name} events, and -e leaves them out")))
        }
        None => Ok(()),
    }
}

/// The id the kernel gives a cgroup v2 (what `bpf_get_current_cgroup_id` returns): the
/// inode number of its directory in the cgroup2 file system.
fn cgroup_id(path: &Path) -> Result<u64, UsageError> {
    use std::os::{linux::fs::MetadataExt, unix::ffi::OsStrExt};
    let unknown = |why: &str| {
        UsageError(format!("unknown cgroup path {}: {why}", crate::loader::shown(path)))
    };
    let meta = std::fs::metadata(path).map_err(|e| unknown(&e.to_string()))?;
    if !meta.is_dir() {
        return Err(unknown("not a directory"));
    }
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| unknown("has a NUL"))?;
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &raw mut fs) } != 0
        || fs.f_type != CGROUP2_SUPER_MAGIC
    {
        return Err(unknown("not in a cgroup v2 file system"));
    }
    Ok(meta.st_ino())
}

/// `ioctl(NS_GET_NSTYPE)` (include/uapi/linux/nsfs.h): which kind of namespace a
/// namespace file is, as its `CLONE_NEW*` flag.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// A network namespace's inode number (how the kernel names it, and what events show in
/// `netns`): given as that number, or read from a namespace file, by path or by its
/// `ip netns` name. A number must name a network namespace that a process or an
/// `ip netns` name holds: a mistyped one would otherwise trace nothing, silently (one
/// held only elsewhere, by a bind mount or an open file, is given by its file). Tracing
/// with CAP_BPF and CAP_PERFMON rather than as root, tcptrace cannot see the namespaces
/// of processes more privileged than itself, nor open their files: a number not found
/// among the ones it can see is then taken as given, and stderr says it was not checked.
fn netns_inode(given: &str) -> Result<u32, UsageError> {
    use std::os::{fd::AsRawFd, linux::fs::MetadataExt};
    let bad = |why: &dyn std::fmt::Display| {
        UsageError(format!("--netns {}: {why}", crate::loader::shown(Path::new(given))))
    };
    if given.is_empty() {
        return Err(bad(&"empty"));
    }
    if given.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(inode @ 1..) = given.parse::<u32>() else {
            return Err(bad(&format_args!("not a namespace inode number (1 to {})", u32::MAX)));
        };
        return match netns_held(u64::from(inode)) {
            Held::Yes => Ok(inode),
            Held::No { hidden: 0 } => Err(bad(
                &"no process or `ip netns` name is in a network namespace with that inode number",
            )),
            Held::No { hidden } => {
                let (what, them) =
                    if hidden == 1 { ("process is", "it") } else { ("processes are", "them") };
                say!("tcptrace: --netns {inode}: not checked: no process tcptrace can see is in that namespace, and the namespaces of {hidden} {what} hidden from it (seeing {them} takes CAP_SYS_PTRACE)");
                Ok(inode)
            }
        };
    }
    let by_name = !given.contains('/');
    let path =
        if by_name { Path::new("/run/netns").join(given) } else { Path::new(given).to_path_buf() };
    let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if by_name => {
            bad(&"no such `ip netns` name (in /run/netns) or file")
        }
        _ => bad(&e),
    })?;
    // SAFETY: an ioctl without argument on a file this function holds open.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(bad(&"not a network namespace"));
    }
    let inode = file.metadata().map_err(|e| bad(&e))?.st_ino();
    u32::try_from(inode).map_err(|_| bad(&"inode number out of range"))
}

/// tcptrace's own network namespace (inode), if `/proc` says.
pub(crate) fn own_netns() -> Option<u32> {
    use std::os::linux::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").ok().and_then(|m| u32::try_from(m.st_ino()).ok())
}

/// Whether a network namespace is held by a process or an `ip netns` name.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    Yes,
    /// Not by any this process can see; `hidden`: processes whose namespace it may not
    /// look at, for want of CAP_SYS_PTRACE (0 when it has it: what it cannot see then is
    /// kept from root too, as a sandbox may keep its PID 1).
    No {
        hidden: usize,
    },
}

/// Whether a process (`/proc/PID/ns/net`) or an `ip netns` name is in the network
/// namespace with this inode number.
fn netns_held(inode: u64) -> Held {
    use std::os::linux::fs::MetadataExt;
    let mut hidden = 0;
    let mut any_in = |dir: &str, tail: &str| {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|entry| match std::fs::metadata(
            entry.path().join(tail),
        ) {
            Ok(m) => m.st_ino() == inode,
            Err(e) => {
                hidden += usize::from(e.kind() == std::io::ErrorKind::PermissionDenied);
                false
            }
        })
    };
    if any_in("/proc", "ns/net") || any_in("/run/netns", "") {
        return Held::Yes;
    }
    if crate::privileges::has_effective(crate::privileges::CAP_SYS_PTRACE) {
        hidden = 0;
    }
    Held::No { hidden }
}

/// A `--btf` that names no readable file is the user's mistake, like an unknown cgroup;
/// what the file holds is judged when it is parsed.
fn btf_file(path: &Path) -> Result<(), UsageError> {
    let bad = |why: &dyn std::fmt::Display| {
        UsageError(format!("--btf {}: {why}", crate::loader::shown(path)))
    };
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(bad(&"not a file")),
        Err(why) => Err(bad(&why)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn build(args: &[&str]) -> Result<Filter, UsageError> {
        from_cli(
            &Cli::try_parse_from(std::iter::once("tcptrace").chain(args.iter().copied()))
                .expect("parses"),
        )
    }

    #[test]
    fn flags_land_in_the_kernel_filter() {
        let f = build(&[
            "-p",
            "10",
            "-p",
            "20",
            "--port",
            "80",
            "--rport",
            "8000-8100",
            "-c",
            "curl",
            "-u",
            "1000",
            "-6",
            "--failed",
            "--min-latency",
            "2ms",
        ])
        .expect("valid");
        assert_eq!((f.pid_count, f.pids[0], f.pids[1]), (2, 10, 20));
        assert!(f.ports.contains(80) && !f.ports.contains(81));
        assert!(f.lports.is_any());
        assert!(f.rports.contains(8050) && !f.rports.contains(8101));
        assert_eq!(&f.comm[..5], b"curl\0");
        assert_eq!((f.has_comm, f.uid, f.has_uid, f.family), (1, 1000, 1, u32::from(AF_INET6)));
        assert_eq!((f.failed_only, f.min_latency_ns), (1, 2_000_000));
        assert_eq!(f.self_pid, std::process::id());
    }

    /// As bcc's tools take them: `-p 10,20`, `--port 80,443`.
    #[test]
    fn comma_separated_values_are_several() {
        let f = build(&[
            "-p",
            "10,20",
            "--port",
            "80,443,8000-8100",
            "--lport",
            "22",
            "--lport",
            "2222,3333",
        ])
        .expect("valid");
        assert_eq!((f.pid_count, f.pids[0], f.pids[1]), (2, 10, 20));
        assert!(
            [80, 443, 8000, 8100].iter().all(|p| f.ports.contains(*p)) && !f.ports.contains(444)
        );
        assert!([22, 2222, 3333].iter().all(|p| f.lports.contains(*p)) && !f.lports.contains(23));
        let nine: Vec<String> = (1..=9).map(|p| p.to_string()).collect();
        assert_eq!(
            build(&["--rport", &nine.join(",")]).expect_err("9 ports").to_string(),
            "at most 8 --rport values (see --help)"
        );
    }

    #[test]
    fn limits_and_bad_cgroups_are_usage_errors() {
        let pids: Vec<String> = (1..=9).map(|p| p.to_string()).collect();
        let mut args = Vec::new();
        for p in &pids {
            args.extend(["-p", p.as_str()]);
        }
        assert_eq!(
            build(&args).expect_err("9 pids").to_string(),
            "at most 8 --pid values (see --help)"
        );
        let err = build(&["--cgroup", "/nonexistent"]).expect_err("no such cgroup").to_string();
        assert!(err.starts_with("unknown cgroup path /nonexistent: "), "{err}");
        let err = build(&["--cgroup", "/tmp"]).expect_err("not a cgroup").to_string();
        assert!(err.starts_with("unknown cgroup path /tmp: not in a cgroup v2"), "{err}");
        let err = build(&["--btf", "/nonexistent"]).expect_err("no such BTF file").to_string();
        assert!(err.starts_with("--btf /nonexistent: No such file"), "{err}");
        assert_eq!(
            build(&["--btf", "/tmp"]).expect_err("a directory").to_string(),
            "--btf /tmp: not a file (see --help)"
        );
    }

    #[test]
    fn netns_is_an_inode_number_or_a_namespace_file() {
        use std::os::linux::fs::MetadataExt;
        let own = std::fs::metadata("/proc/self/ns/net").expect("own netns").st_ino();
        assert_eq!(
            u64::from(build(&["--netns", "/proc/self/ns/net"]).expect("a netns file").netns),
            own
        );
        assert_eq!(u64::from(build(&["--netns", &own.to_string()]).expect("a number").netns), own);
        assert_eq!(build(&[]).expect("no filter").netns, 0);
        let mnt = std::fs::metadata("/proc/self/ns/mnt")
            .expect("own mount namespace")
            .st_ino()
            .to_string();
        for (given, error) in [
            ("0", "--netns 0: not a namespace inode number (1 to 4294967295) (see --help)".to_string()),
            ("4294967296", "--netns 4294967296: not a namespace inode number (1 to 4294967295) (see --help)".to_string()),
            // A mount namespace's number, and one of no namespace at all.
            (&mnt, format!("--netns {mnt}: no process or `ip netns` name is in a network namespace with that inode number (see --help)")),
            ("1", "--netns 1: no process or `ip netns` name is in a network namespace with that inode number (see --help)".to_string()),
            ("", "--netns : empty (see --help)".to_string()),
            ("/proc/self/ns/mnt", "--netns /proc/self/ns/mnt: not a network namespace (see --help)".to_string()),
            ("/etc/hostname", "--netns /etc/hostname: not a network namespace (see --help)".to_string()),
            ("/nonexistent", "--netns /nonexistent: No such file or directory (os error 2) (see --help)".to_string()),
            ("tt-no-such-netns", "--netns tt-no-such-netns: no such `ip netns` name (in /run/netns) or file (see --help)".to_string()),
        ] {
            assert_eq!(build(&["--netns", given]).expect_err(given).to_string(), error);
        }
    }
}
