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

/// The name a Dockerfile from outside its build context is sent under, in the context's
/// root (as Docker's CLI sends one).
pub const OUTSIDE_DOCKERFILE: &str = ".racy-matrix.Dockerfile";

/// A build's context as the engine gets it: the tar, and the Dockerfile's path in it.
pub struct BuildContext {
    /// The tar.
    pub tar: Vec<u8>,
    /// The Dockerfile's path in the tar.
    pub dockerfile: String,
}

/// A deterministic tar of a build context: sorted paths, zeroed times and owners, no
/// Python caches. Its hash names the image. `dockerfile` is compose's `build.dockerfile`
/// (relative to the context; `Dockerfile` when `None`): one inside the context is sent
/// where it is, one outside it is read and added under [`OUTSIDE_DOCKERFILE`].
pub fn context_tar(dir: &Path, dockerfile: Option<&str>) -> Result<BuildContext> {
    let named = dockerfile.unwrap_or("Dockerfile");
    let path = dir.join(named);
    if !path.is_file() {
        bail!(
            "no Dockerfile at {} (build.dockerfile is relative to the build context {}): \
             give the file's path from the context",
            path.display(),
            dir.display()
        );
    }
    let root = dir
        .canonicalize()
        .with_context(|| format!("reading the build context {}", dir.display()))?;
    let file = path.canonicalize()?;
    let inside = file.strip_prefix(&root).ok().map(|rel| {
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    });
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |rel: &Path, data: &[u8], executable: bool| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, rel, data)?;
        Ok(())
    };
    for rel in files {
        let path = dir.join(&rel);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        add(&rel, &data, is_executable(&path))?;
    }
    let dockerfile = match inside {
        Some(rel) => rel,
        None => {
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            add(Path::new(OUTSIDE_DOCKERFILE), &data, false)?;
            OUTSIDE_DOCKERFILE.to_string()
        }
    };
    Ok(BuildContext {
        tar: builder.into_inner()?,
        dockerfile,
    })
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

/// The tag of a context: `racy-matrix/<context dir name>:<first 16 hex of sha256(tar,
/// Dockerfile path, args)>` (the path only when it is not `Dockerfile`, so that which of
/// a context's Dockerfiles builds it is part of the name).
pub fn image_tag(context: &Path, built: &BuildContext, args: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(&built.tar);
    if built.dockerfile != "Dockerfile" {
        h.update(b"dockerfile\0");
        h.update(built.dockerfile.as_bytes());
        h.update([0]);
    }
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
    dockerfile: Option<&str>,
    args: &BTreeMap<String, String>,
    progress: &mut Progress<'_>,
) -> Result<(String, bool)> {
    let built = context_tar(context, dockerfile)?;
    let tag = image_tag(context, &built, args);
    if engine.image_exists(&tag).await? {
        return Ok((tag, false));
    }
    let labels = HashMap::from([(
        "racy-matrix.context".to_string(),
        context.display().to_string(),
    )]);
    let args: HashMap<String, String> = args.clone().into_iter().collect();
    engine
        .build_image(built.tar, &built.dockerfile, &tag, args, labels, progress)
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
        let tag = |d: Option<&str>| image_tag(&dir, &context_tar(&dir, d).unwrap(), &none);
        let t1 = context_tar(&dir, None).unwrap();
        let tag1 = image_tag(&dir, &t1, &none);
        assert_eq!(t1.dockerfile, "Dockerfile");
        // same content, same tag (times are not part of it)
        assert_eq!(tag1, tag(None));
        // caches are left out
        std::fs::write(dir.join("sub/__pycache__/a.pyc"), "other junk").unwrap();
        assert_eq!(tag1, tag(None));
        // args and content change it
        let args = BTreeMap::from([("BASE_IMAGE".to_string(), "b".to_string())]);
        assert_ne!(tag1, image_tag(&dir, &t1, &args));
        std::fs::write(dir.join("sub/a.py"), "print(2)\n").unwrap();
        let tag2 = tag(None);
        assert_ne!(tag1, tag2);
        assert!(tag1.starts_with("racy-matrix/racy-img-"));
        // build.dockerfile: another file of the context builds another image, sent where
        // it is; one outside the context is sent under a name of its own, its content
        // part of the tag
        std::fs::write(dir.join("sub/app.Dockerfile"), "FROM y\n").unwrap();
        let other = context_tar(&dir, Some("sub/app.Dockerfile")).unwrap();
        assert_eq!(other.dockerfile, "sub/app.Dockerfile");
        assert_ne!(image_tag(&dir, &other, &none), tag(None));
        let outside = dir.with_extension("Dockerfile");
        std::fs::write(&outside, "FROM z\n").unwrap();
        let name = format!("../{}", outside.file_name().unwrap().to_string_lossy());
        let far = context_tar(&dir, Some(&name)).unwrap();
        assert_eq!(far.dockerfile, OUTSIDE_DOCKERFILE);
        let mut archive = tar::Archive::new(far.tar.as_slice());
        let sent: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(sent.contains(&OUTSIDE_DOCKERFILE.to_string()), "{sent:?}");
        let before = tag(Some(&name));
        std::fs::write(&outside, "FROM w\n").unwrap();
        assert_ne!(before, tag(Some(&name)));
        // a Dockerfile that is not there: said with the path looked for
        let e = context_tar(&dir, Some("docker/missing.Dockerfile"))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("no Dockerfile at "), "{e}");
        std::fs::remove_file(&outside).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
