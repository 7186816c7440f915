//! The VM's root file system: busybox-static, our binaries and the glibc libraries they
//! link (as `ldd` lists them), and an `/init` that runs the tests and prints markers.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

/// A binary to copy into the VM under `/tt/<name>`.
pub(crate) struct Payload {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

fn copy_into(root: &Path, src: &Path, dest_rel: &Path) -> Result<()> {
    let dest = root.join(dest_rel.strip_prefix("/").unwrap_or(dest_rel));
    std::fs::create_dir_all(dest.parent().context("no parent")?)?;
    std::fs::copy(src, &dest).with_context(|| format!("copying {}", src.display()))?;
    Ok(())
}

/// Copies a binary without its debug info: a debug test binary is ~25 MB, most of it
/// DWARF, and the VM unpacks every one into memory at boot. A panic still says where
/// (its location is in the binary's data, not its debug info). A plain copy where
/// `objcopy` fails.
fn copy_stripped(root: &Path, src: &Path, dest_rel: &Path) -> Result<()> {
    let dest = root.join(dest_rel.strip_prefix("/").unwrap_or(dest_rel));
    std::fs::create_dir_all(dest.parent().context("no parent")?)?;
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(src)
        .arg(&dest)
        .status()
        .is_ok_and(|s| s.success());
    if stripped {
        Ok(())
    } else {
        copy_into(root, src, dest_rel)
    }
}

/// Absolute paths of the shared libraries `binary` needs (and the dynamic loader).
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split("=>").nth(1).unwrap_or(l).trim().split(' ').next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Builds `<work>/initramfs.cpio` (newc, uncompressed) running `init_script`, with the
/// kernel modules in `modules` under `/modules/`.
pub(crate) fn build(
    work: &Path,
    payloads: &[Payload],
    modules: &[PathBuf],
    init_script: &str,
) -> Result<PathBuf> {
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "sbin", "proc", "sys", "dev", "tmp", "tt", "etc"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    copy_into(&root, Path::new("/bin/busybox"), Path::new("/bin/busybox"))?;
    for p in payloads {
        copy_stripped(&root, &p.path, &Path::new("/tt").join(&p.name))?;
        for lib in libraries(&p.path)? {
            copy_into(&root, &lib, &lib)?;
        }
    }
    for ko in modules {
        let name = ko.file_name().context("module without a name")?;
        copy_into(&root, ko, &Path::new("/modules").join(name))?;
    }
    let init = root.join("init");
    std::fs::write(&init, init_script)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let cpio = work.join("initramfs.cpio");
    let status = Command::new("sh")
        .current_dir(&root)
        .arg("-c")
        .arg(format!("find . | LC_ALL=C sort | cpio --quiet -o -H newc > '{}'", cpio.display()))
        .status()?;
    anyhow::ensure!(status.success(), "cpio failed");
    Ok(cpio)
}
