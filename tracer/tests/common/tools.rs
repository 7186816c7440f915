//! Running the system's tools (`ip`, `nft`) from the tests, and the pieces that forked
//! children need to do so without allocating.

use std::ffi::{CStr, CString};

use super::wait_child;

/// A binary from the environment variable `var`, or the usual places.
pub fn tool_path(var: &str, name: &str, package: &str) -> CString {
    let path = std::env::var(var).ok().or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .into_iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| std::path::Path::new(p).exists())
    });
    CString::new(path.unwrap_or_else(|| panic!("{name} not found (apt-get install {package})")))
        .expect("no NUL")
}

/// Writes `text` to a temporary file and returns its path as a C string.
pub fn temp_file(name: &str, text: &str) -> CString {
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, text).expect("write temp file");
    CString::new(path.to_string_lossy().into_owned()).expect("no NUL")
}

/// Runs `argv` (NUL-terminated) in a child and returns its exit code. Raw calls only: for
/// forked children.
pub fn run(argv: &[*const libc::c_char]) -> i32 {
    // SAFETY: fork + execv with NUL-terminated argv built before the fork.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::execv(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
        wait_child(pid)
    }
}

/// `n` in decimal, NUL-terminated, in `buf`, without allocating (for forked children).
pub fn decimal(mut n: u32, buf: &mut [u8; 12]) -> *const libc::c_char {
    let mut at = buf.len() - 1;
    buf[at] = 0;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[at..].as_ptr().cast()
}

/// The packets counter of the one rule `list` (`nft list table ...`) prints, read from its
/// output. Raw calls only: for forked children.
pub fn packets_counted(list: &[*const libc::c_char]) -> Option<u64> {
    let mut out = [0; 2];
    // SAFETY: a valid two-int array.
    if unsafe { libc::pipe(out.as_mut_ptr()) } != 0 {
        return None;
    }
    let mut text = [0u8; 4096];
    // SAFETY: fork + execv with NUL-terminated argv built before the fork; reads into a
    // buffer of ours.
    let read = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::dup2(out[1], 1);
            libc::execv(list[0], list.as_ptr());
            libc::_exit(127);
        }
        libc::close(out[1]);
        let mut read = 0;
        loop {
            let n = libc::read(out[0], text.as_mut_ptr().add(read).cast(), text.len() - read);
            if n <= 0 {
                break;
            }
            read += n as usize;
        }
        libc::close(out[0]);
        if wait_child(pid) != 0 {
            return None;
        }
        read
    };
    let text = text.get(..read)?;
    let at = text.windows(8).position(|w| w == b"packets ")? + 8;
    let mut digits = text.get(at..)?.iter().take_while(|b| b.is_ascii_digit());
    digits.try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// A pipe, close-on-exec: [read end, write end].
pub fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: a valid two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    fds
}

/// Writes `value` to the sysctl at `path`, in the caller's network namespace. A sysctl
/// this kernel does not have is fine when `optional`.
pub fn write_sysctl(path: &CStr, value: &[u8], optional: bool) -> bool {
    // SAFETY: open, write and close with valid buffers.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return optional
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT);
        }
        let written = libc::write(fd, value.as_ptr().cast(), value.len()) == value.len() as isize;
        libc::close(fd);
        written
    }
}

/// An nftables table (`inet tt`) of one chain and one rule, for a forked child to load
/// in a network namespace of its own: the argument vectors it runs, built beforehand
/// (nothing is allocated after the fork).
pub struct PrivateRules {
    nft: CString,
    ip: CString,
    file: CString,
}

impl PrivateRules {
    /// `rule` in a chain on `hook` (`input`, `output`); `name` keeps the file apart.
    pub fn new(name: &str, hook: &str, rule: &str) -> Self {
        let text = format!("table inet tt {{\n  chain c {{\n    type filter hook {hook} priority 0; policy accept;\n    {rule}\n  }}\n}}\n");
        Self {
            nft: tool_path("TT_NFT", "nft", "nftables"),
            ip: tool_path("TT_IP", "ip", "iproute2"),
            file: temp_file(name, &text),
        }
    }

    /// In a forked child: its own network namespace, loopback up, the rule loaded.
    pub fn enter(&self) -> bool {
        let lo_up = [
            self.ip.as_ptr(),
            c"link".as_ptr(),
            c"set".as_ptr(),
            c"lo".as_ptr(),
            c"up".as_ptr(),
            std::ptr::null(),
        ];
        let load = [self.nft.as_ptr(), c"-f".as_ptr(), self.file.as_ptr(), std::ptr::null()];
        // SAFETY: unshare takes no pointers.
        unsafe { libc::unshare(libc::CLONE_NEWNET) == 0 && run(&lo_up) == 0 && run(&load) == 0 }
    }

    /// In the same child, later: the packets the rule counted.
    pub fn counted(&self) -> Option<u64> {
        packets_counted(&[
            self.nft.as_ptr(),
            c"list".as_ptr(),
            c"table".as_ptr(),
            c"inet".as_ptr(),
            c"tt".as_ptr(),
            std::ptr::null(),
        ])
    }
}
