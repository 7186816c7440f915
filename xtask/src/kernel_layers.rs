//! The kernel crate's layers (issue 37): tracer-ebpf/src/main.rs lists them, bottom first,
//! and this test holds every module to the list, so that the crate has no import cycle
//! and a newcomer can read it from the bottom up. A module may use its own folder and any
//! layer below its own, never its own layer's other modules or a layer above.

use std::{collections::BTreeMap, path::Path};

use crate::workspace_root;

/// Module name -> layer number, from the numbered list in main.rs's `//!` block.
fn layers(main_rs: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut layer = 0;
    for line in main_rs.lines().map_while(|l| l.strip_prefix("//!")) {
        let line = line.trim_start();
        // "1. `maps`, `mem`: ..." starts a layer; its modules come before the ':'.
        let Some((number, rest)) = line.split_once(". ") else { continue };
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        layer += 1;
        let names = rest.split(':').next().unwrap_or_default();
        for name in names.split(',').map(|n| n.trim().trim_matches('`')) {
            out.insert(name.to_string(), layer);
        }
    }
    out
}

/// The crate modules a file names (`crate::x`, and each `x` of `use crate::{x, y::z}`),
/// comments left out.
fn imports(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: depth-0 items, each up to its first "::".
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(item);
        } else {
            out.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    out.iter()
        .map(|i| i.trim().split("::").next().unwrap_or_default().trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("tracer-ebpf/src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_kernel_module_imports_only_from_layers_below_its_own() {
    let src = workspace_root().join("tracer-ebpf/src");
    let main_rs = std::fs::read_to_string(src.join("main.rs")).expect("main.rs");
    let layers = layers(&main_rs);
    assert!(layers.len() >= 10, "main.rs's layer list was not found: {layers:?}");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let module = relative.iter().next().and_then(|m| m.to_str()).unwrap_or_default();
        let module = module.trim_end_matches(".rs");
        if module == "main" || module == "floor" {
            continue;
        }
        let Some(&own) = layers.get(module) else {
            wrong.push(format!("{}: module `{module}` is in no layer", relative.display()));
            continue;
        };
        let source = std::fs::read_to_string(file).expect("source");
        for import in imports(&source) {
            match layers.get(&import) {
                _ if import == module => {}
                Some(&layer) if layer < own => {}
                Some(&layer) => wrong.push(format!(
                    "{}: `{module}` (layer {own}) imports `{import}` (layer {layer})",
                    relative.display()
                )),
                None => {
                    wrong.push(format!("{}: imports `{import}`, in no layer", relative.display()))
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn imports_are_read_from_paths_and_groups() {
    let source = "use crate::{emit::{count, now}, maps::SOCKS, sock};\n\
                  // crate::commented\n let x = crate::globals::armed();";
    assert_eq!(imports(source), ["emit", "maps", "sock", "globals"]);
}
