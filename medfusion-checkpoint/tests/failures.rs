//! A full disk and a directory the process may not write give clear errors and leave
//! the older checkpoints intact.
//!
//! Each scenario runs in a child process (this test binary, re-executed), because it
//! changes process-wide state: a file size limit, a mount namespace, the user id. Where the
//! process lacks the privileges for that, a scenario is skipped with a note, unless
//! `MEDFUSION_REQUIRE_FAULTS=1` (set by CI, which runs as root) makes that a failure.

mod common;

use std::path::Path;

use common::{checkpoint, child_arg, entries_with_prefix, model, run_child, visible_entries};
use medfusion_checkpoint::{Checkpoint, CheckpointManager, Error, NodeState, Tensor, TensorSet};

/// Exit code of a child that could not set its scenario up (not permitted here).
const SKIP: i32 = 77;

/// A checkpoint with a 4 MiB model: too large for the limits below.
fn large() -> Checkpoint {
    let big = TensorSet::new().with(
        "w",
        Tensor::from_vec([1024, 1024], vec![0.5f32; 1 << 20]).unwrap(),
    );
    checkpoint(2).with_node("big", NodeState::new().with_model(big))
}

/// The older checkpoint is listed alone, verifies and loads; nothing half-written is
/// visible.
fn assert_intact(manager: &CheckpointManager, dir: &Path, old: &str) {
    let listed: Vec<String> = manager
        .list("wf")
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, [old]);
    assert_eq!(visible_entries(dir), [old]);
    manager.verify(old).unwrap();
    assert_eq!(manager.load(old).unwrap().checkpoint, checkpoint(1));
    assert_eq!(manager.resume_workflow("wf").unwrap().unwrap().info.id, old);
}

fn expect_child(name: &str, arg: &str) {
    let output = run_child(name, arg);
    let code = output.status.code();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if code == Some(SKIP) {
        // CI runs as root with mount namespaces: there the fault must be injected, and a
        // skip would let the test pass without checking anything.
        let required = std::env::var("MEDFUSION_REQUIRE_FAULTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "MEDFUSION_REQUIRE_FAULTS=1 but `{name}` could not inject its fault: {}",
            stderr.trim()
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "note: skipping `{name}` (set MEDFUSION_REQUIRE_FAULTS=1 to make this a \
                 failure): {}",
                stderr.trim()
            );
        }
        return;
    }
    assert!(
        output.status.success(),
        "child `{name}` failed ({code:?}):\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
}

fn skip(reason: &str) -> ! {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{reason}: {}", std::io::Error::last_os_error());
    }
    std::process::exit(SKIP);
}

#[test]
fn file_size_limit_child() {
    let Some(dir) = child_arg() else { return };
    let dir = Path::new(&dir);
    let manager = CheckpointManager::new(dir);
    let old = manager.save("wf", &checkpoint(1)).unwrap().info.id;
    // SAFETY: plain libc calls on this single-purpose child process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit), 0);
    }
    let err = manager.save("wf", &large()).unwrap_err();
    let Error::Io {
        action,
        path,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*action, "write");
    assert!(path.starts_with(dir.join(".objects")), "{}", path.display());
    assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert_intact(&manager, dir, &old);
    assert!(
        entries_with_prefix(dir, ".tmp-").is_empty(),
        "the failed save cleaned up"
    );

    // With room again, the same save goes through.
    // SAFETY: as above.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit), 0);
    }
    let new = manager.save("wf", &large()).unwrap().info.id;
    assert_eq!(manager.load(&new).unwrap().checkpoint, large());
}

#[test]
fn a_failing_write_leaves_older_checkpoints_intact() {
    let dir = tempfile::tempdir().unwrap();
    expect_child("file_size_limit_child", dir.path().to_str().unwrap());
}

#[test]
fn full_disk_child() {
    let Some(dir) = child_arg() else { return };
    let dir = Path::new(&dir);
    let target = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // A tmpfs of 2 MiB over `dir`, visible to this process only.
    // SAFETY: plain libc calls with valid C strings, in this single-purpose child.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            skip("cannot make a mount namespace");
        }
        let none = c"none".as_ptr();
        if libc::mount(
            none,
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            skip("cannot make mounts private");
        }
        let fs = c"tmpfs".as_ptr();
        if libc::mount(fs, target.as_ptr(), fs, 0, c"size=2m".as_ptr().cast()) != 0 {
            skip("cannot mount a tmpfs");
        }
    }
    let manager = CheckpointManager::new(dir.join("ckpt"));
    let root = dir.join("ckpt");
    let old = manager.save("wf", &checkpoint(1)).unwrap().info.id;
    let err = manager.save("wf", &large()).unwrap_err();
    let Error::Io { path, source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{source}");
    assert!(path.starts_with(&root), "{}", path.display());
    assert_intact(&manager, &root, &old);
    // The space of the failed save is given back: a small save fits again.
    let next = manager.save("wf", &checkpoint(3)).unwrap().info.id;
    assert_eq!(manager.load(&next).unwrap().checkpoint, checkpoint(3));
}

#[test]
fn a_full_disk_leaves_older_checkpoints_intact() {
    let dir = tempfile::tempdir().unwrap();
    expect_child("full_disk_child", dir.path().to_str().unwrap());
}

#[test]
fn read_only_child() {
    let Some(dir) = child_arg() else { return };
    let dir = Path::new(&dir);
    let manager = CheckpointManager::new(dir);
    let old = manager.save("wf", &checkpoint(1)).unwrap().info.id;
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    mode(dir, 0o555);
    mode(dir.parent().unwrap(), 0o755);
    // Root may write anywhere: become nobody first.
    // SAFETY: plain libc calls in this single-purpose child.
    unsafe {
        if libc::geteuid() == 0 && (libc::setgid(65534) != 0 || libc::setuid(65534) != 0) {
            skip("cannot switch to user nobody");
        }
    }
    let err = manager.save("wf", &checkpoint(2)).unwrap_err();
    let Error::Io { path, source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        source.kind(),
        std::io::ErrorKind::PermissionDenied,
        "{source}"
    );
    assert!(path.starts_with(dir), "{}", path.display());
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert_intact(&manager, dir, &old);
    let prune = manager.prune("wf").unwrap_err();
    assert!(matches!(prune, Error::Io { .. }), "{prune:?}");
    assert_eq!(
        model(0),
        manager.load(&old).unwrap().checkpoint.nodes["train"]
            .model
            .clone()
            .unwrap()
    );
}

#[test]
fn a_read_only_directory_gives_permission_denied() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("ckpt");
    expect_child("read_only_child", dir.to_str().unwrap());
    // Let the temporary directory be removed.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}
