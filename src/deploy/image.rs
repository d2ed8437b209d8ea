//! Images without a registry: the Debian base made locally when it cannot be pulled, and
//! stack images built from a tar of their context and tagged by a hash of it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::deploy::engine::Engine;
use crate::deploy::progress::{Progress, Step};

/// The tag under which racy-matrix keeps the Debian base it makes itself.
pub const LOCAL_BASE: &str = "racy-matrix/debian:trixie";
/// The upstream base the Dockerfiles name by default.
pub const UPSTREAM_BASE: &str = "debian:trixie-slim";

/// Makes sure a Debian trixie base image exists and returns its reference: the local one,
/// else the upstream one if present or pullable, else one bootstrapped with mmdebstrap.
pub async fn ensure_base(engine: &Engine, progress: &mut Progress<'_>) -> Result<String> {
    if engine.image_exists(LOCAL_BASE).await? {
        return Ok(LOCAL_BASE.into());
    }
    if engine.image_exists(UPSTREAM_BASE).await? {
        return Ok(UPSTREAM_BASE.into());
    }
    progress(Step::Pulling(UPSTREAM_BASE));
    if engine
        .try_pull(UPSTREAM_BASE, Duration::from_secs(15))
        .await
    {
        return Ok(UPSTREAM_BASE.into());
    }
    progress(Step::Bootstrapping);
    let tarball = bootstrap_rootfs().await?;
    let (repo, tag) = LOCAL_BASE.split_once(':').expect("tagged");
    engine.import_rootfs(tarball, repo, tag).await?;
    Ok(LOCAL_BASE.into())
}

async fn bootstrap_rootfs() -> Result<Vec<u8>> {
    let out = tokio::process::Command::new("mmdebstrap")
        .args([
            "--variant=apt",
            "--include=ca-certificates",
            "--quiet",
            "trixie",
            "-",
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run mmdebstrap ({e}); no base image can be pulled, so racy-matrix \
                 makes one from Debian packages: install it with `apt-get install mmdebstrap`"
            )
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        bail!(
            "mmdebstrap failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(out.stdout)
}

/// A deterministic tar of a build context: sorted paths, zeroed times and owners, no
/// Python caches. Its hash names the image.
pub fn context_tar(dir: &Path) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut builder = tar::Builder::new(Vec::new());
    for rel in files {
        let path = dir.join(&rel);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(if is_executable(&path) { 0o755 } else { 0o644 });
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &rel, data.as_slice())?;
    }
    Ok(builder.into_inner()?)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "__pycache__" || name.ends_with(".pyc") || name == ".git" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}

/// The tag of a context: `racy-matrix/<context dir name>:<first 16 hex of sha256(tar, args)>`.
pub fn image_tag(context: &Path, tar: &[u8], args: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(tar);
    for (k, v) in args {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let name: String = context
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "image".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("racy-matrix/{name}:{hex}")
}

/// Builds the image of a context unless an image with its content tag exists; returns
/// the tag and whether it was built.
pub async fn ensure_built(
    engine: &Engine,
    context: &Path,
    args: &BTreeMap<String, String>,
    progress: &mut Progress<'_>,
) -> Result<(String, bool)> {
    let tar = context_tar(context)?;
    let tag = image_tag(context, &tar, args);
    if engine.image_exists(&tag).await? {
        return Ok((tag, false));
    }
    let labels = HashMap::from([(
        "racy-matrix.context".to_string(),
        context.display().to_string(),
    )]);
    let args: HashMap<String, String> = args.clone().into_iter().collect();
    engine
        .build_image(tar, &tag, args, labels, progress)
        .await?;
    Ok((tag, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_follows_content_and_args() {
        let dir = std::env::temp_dir().join(format!("racy-img-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub/__pycache__")).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(dir.join("sub/a.py"), "print(1)\n").unwrap();
        std::fs::write(dir.join("sub/__pycache__/a.pyc"), "junk").unwrap();
        let none = BTreeMap::new();
        let t1 = context_tar(&dir).unwrap();
        let tag1 = image_tag(&dir, &t1, &none);
        // same content, same tag (times are not part of it)
        assert_eq!(tag1, image_tag(&dir, &context_tar(&dir).unwrap(), &none));
        // caches are left out
        std::fs::write(dir.join("sub/__pycache__/a.pyc"), "other junk").unwrap();
        assert_eq!(tag1, image_tag(&dir, &context_tar(&dir).unwrap(), &none));
        // args and content change it
        let args = BTreeMap::from([("BASE_IMAGE".to_string(), "b".to_string())]);
        assert_ne!(tag1, image_tag(&dir, &t1, &args));
        std::fs::write(dir.join("sub/a.py"), "print(2)\n").unwrap();
        assert_ne!(tag1, image_tag(&dir, &context_tar(&dir).unwrap(), &none));
        assert!(tag1.starts_with("racy-matrix/racy-img-"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
