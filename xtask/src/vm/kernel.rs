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
    /// `lib/modules/<version>/kernel` in the unpacked package.
    pub(crate) modules: PathBuf,
}

impl Kernel {
    /// The `.ko` files for `wanted` and everything they depend on, dependencies first.
    /// Dependencies come from each module's `.modinfo`: `depends=`, and `softdep=pre:`
    /// (libcrc32c needs a crc32c implementation loaded first, found by its `alias=`). The
    /// package ships no modules.dep: depmod writes it at install time.
    pub(crate) fn modules_for(&self, wanted: &[&str]) -> Result<Vec<PathBuf>> {
        let mut all = std::collections::HashMap::new();
        index_modules(&self.modules, &mut all)?;
        let mut order = Vec::new();
        for name in wanted {
            visit(name, &all, &mut order, 0)?;
        }
        Ok(order)
    }
}

/// The values of `key=` in a module's `.modinfo` (NUL-separated `key=value` strings).
fn modinfo(ko: &Path, key: &str) -> Result<Vec<String>> {
    let bytes = std::fs::read(ko)?;
    let needle = format!("{key}=");
    Ok(bytes
        .split(|&b| b == 0)
        .filter_map(|s| s.strip_prefix(needle.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect())
}

/// A module name for a softdep, which may be an alias (`crc32c` -> `crc32c_generic`).
fn resolve(name: &str, all: &std::collections::HashMap<String, PathBuf>) -> Option<String> {
    let name = name.replace('-', "_");
    if all.contains_key(&name) {
        return Some(name);
    }
    let mut names: Vec<&String> = all.keys().collect();
    names.sort(); // deterministic: the generic implementation sorts before arch ones
    names
        .into_iter()
        .find(|m| {
            all.get(*m).is_some_and(|p| {
                modinfo(p, "alias").is_ok_and(|a| a.iter().any(|a| a.replace('-', "_") == name))
            })
        })
        .cloned()
}

fn index_modules(dir: &Path, into: &mut std::collections::HashMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, into)?;
        } else if let Some(name) =
            path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko"))
        {
            into.insert(name.replace('-', "_"), path.clone());
        }
    }
    Ok(())
}

fn depends(ko: &Path, all: &std::collections::HashMap<String, PathBuf>) -> Result<Vec<String>> {
    let mut deps: Vec<String> = modinfo(ko, "softdep")?
        .iter()
        .filter_map(|s| s.strip_prefix("pre:"))
        .flat_map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|s| resolve(&s, all))
        .collect();
    for d in modinfo(ko, "depends")? {
        deps.extend(d.split(',').filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")));
    }
    Ok(deps)
}

fn visit(
    name: &str,
    all: &std::collections::HashMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<()> {
    anyhow::ensure!(depth < 32, "module dependency loop at {name}");
    let path =
        all.get(name).with_context(|| format!("module {name} is not in the kernel package"))?;
    if order.contains(path) {
        return Ok(());
    }
    for dep in depends(path, all)? {
        visit(&dep, all, order, depth + 1)?;
    }
    order.push(path.clone());
    Ok(())
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
        let out = Command::new("apt-cache")
            .args(["depends", "linux-image-amd64"])
            .output()
            .context("running apt-cache")?;
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
        let modules = modules_dir(&dir)?;
        return Ok(Kernel { package, vmlinuz, modules });
    }
    let downloads = cache_dir().join("debs");
    std::fs::create_dir_all(&downloads)?;
    crate::run_cmd(Command::new("apt-get").current_dir(&downloads).args(["download", &package]))?;
    let deb = std::fs::read_dir(&downloads)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .context("apt-get download left no .deb")?;
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    crate::run_cmd(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, &dir)?;
    let vmlinuz = find_vmlinuz(&dir).context("no boot/vmlinuz-* in the kernel package")?;
    let modules = modules_dir(&dir)?;
    Ok(Kernel { package, vmlinuz, modules })
}

fn modules_dir(dir: &Path) -> Result<PathBuf> {
    let base = dir.join("lib/modules");
    let version = std::fs::read_dir(&base)?
        .filter_map(Result::ok)
        .next()
        .context("no lib/modules/<version> in the kernel package")?;
    Ok(version.path().join("kernel"))
}
