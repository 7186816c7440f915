//! Getting Debian's stock kernel without installing it: `apt-get download` the package that
//! `linux-image-amd64` depends on, `dpkg -x` it into a cache folder, reuse it next time.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// An unpacked kernel package.
pub(crate) struct Kernel {
    pub(crate) package: String,
    pub(crate) vmlinuz: PathBuf,
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("tcptrace-vm")
}

/// `linux-image-6.1.0-NN-amd64`, from the meta package's dependency.
fn resolve_package() -> Result<String> {
    for attempt in 0..2 {
        let out = Command::new("apt-cache").args(["depends", "linux-image-amd64"]).output().context("running apt-cache")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(pkg) = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        {
            return Ok(pkg.to_string());
        }
        if attempt == 0 {
            crate::run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
        }
    }
    bail!("apt-cache knows no linux-image-amd64 dependency")
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("boot"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
}

pub(crate) fn fetch() -> Result<Kernel> {
    let package = resolve_package()?;
    let dir = cache_dir().join(&package);
    if let Some(vmlinuz) = find_vmlinuz(&dir) {
        return Ok(Kernel { package, vmlinuz });
    }
    let downloads = cache_dir().join("debs");
    std::fs::create_dir_all(&downloads)?;
    crate::run_cmd(Command::new("apt-get").current_dir(&downloads).args(["download", &package]))?;
    let deb = std::fs::read_dir(&downloads)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_"))))
        .context("apt-get download left no .deb")?;
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    crate::run_cmd(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, &dir)?;
    let vmlinuz = find_vmlinuz(&dir).context("no boot/vmlinuz-* in the kernel package")?;
    Ok(Kernel { package, vmlinuz })
}
