//! Running the system's tools (`ip`, `nft`) from the tests, and the pieces that forked
//! children need to do so without allocating.

use std::ffi::CString;

use super::wait_child;

/// A binary from the environment variable `var`, or the usual places.
pub fn tool_path(var: &str, name: &str, package: &str) -> CString {
    let path = std::env::var(var).ok().or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].into_iter().map(|d| format!("{d}/{name}")).find(|p| std::path::Path::new(p).exists())
    });
    CString::new(path.unwrap_or_else(|| panic!("{name} not found (apt-get install {package})"))).expect("no NUL")
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
