//! The file store as users have it: files whose mode and owner matter (a password file made
//! 0600, a store given to a service's user), writers killed mid-write, and a store folder on a
//! volume whose parent folder nobody but root may write.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{is_root, Env, Unprivileged, NOBODY};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = fs::metadata(path).expect("stat");
    (meta.uid(), meta.gid())
}

fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(".confo-tmp-"))
        .collect();
    names.sort();
    names
}

fn require_root(test: &str) {
    assert!(is_root(), "{test} gives files to another user and must run as root (CI does); it is never skipped");
}

#[test]
fn a_write_keeps_the_files_mode_owner_and_group() {
    require_root("a_write_keeps_the_files_mode_owner_and_group");
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/db", "password=one"]);
    let file = env.root().join("app/db.json");
    let link = env.path("db-hard-link.json");
    fs::hard_link(&file, &link).expect("hard link");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).expect("chown");
    env.ok(&["set", "app/db", "password=two"]);
    assert_eq!(mode(&file), 0o600, "the mode is kept");
    assert_eq!(owner(&file), (NOBODY, NOBODY), "root keeps the owner and group");
    assert_eq!(env.file("app/db.json")["password"], "two");
    // Documented: the file is replaced, so a hard link keeps the old content.
    let linked: serde_json::Value = serde_json::from_slice(&fs::read(&link).expect("read")).expect("json");
    assert_eq!(linked["password"], "one");
    // A group-readable file keeps its group bits, and set-group-ID too.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o2640)).expect("chmod");
    env.ok(&["set", "app/db", "password=three"]);
    assert_eq!(mode(&file), 0o2640);
    assert_eq!(owner(&file), (NOBODY, NOBODY));
}

#[test]
fn an_unprivileged_writer_keeps_the_mode_and_says_once_that_it_cannot_keep_the_owner() {
    require_root("an_unprivileged_writer_keeps_the_mode_and_says_once_that_it_cannot_keep_the_owner");
    let user = Unprivileged::new();
    user.run(&["ns", "create", "app"], 0);
    user.run(&["set", "app/a", "x=1"], 0);
    user.run(&["set", "app/b", "x=1"], 0);
    // Files given to root, read-only for others (nobody may still replace them: the folder
    // is nobody's).
    let (a, b) = (user.env.root().join("app/a.json"), user.env.root().join("app/b.json"));
    for file in [&a, &b] {
        std::os::unix::fs::chown(file, Some(0), Some(0)).expect("chown");
        fs::set_permissions(file, fs::Permissions::from_mode(0o604)).expect("chmod");
    }
    let document = r#"{"app": {"a": {"x": 2}, "b": {"x": 2}}}"#;
    user.write("doc.json", document);
    let (_, stderr) = user.run(&["import", "doc.json"], 0);
    for file in [&a, &b] {
        assert_eq!(mode(file), 0o604, "the mode is kept by any writer");
        assert_eq!(owner(file), (NOBODY, NOBODY), "only root can give a file away");
    }
    let warnings = stderr.lines().filter(|l| l.contains("owned by uid 0")).count();
    assert_eq!(warnings, 1, "one warning per process: {stderr}");
}

/// Runs `confo ARGS` with every fsync slowed to a second (strace's fault injection) and kills
/// it with SIGKILL as soon as its temporary file is in `folder`: a writer killed mid-write,
/// every time.
fn kill_mid_write(env: &Env, folder: &Path, args: &[&str]) {
    let strace = confo_testkit::require_binary("strace", "strace").expect("strace");
    let mut tracer = std::process::Command::new(strace)
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:delay_enter=1000000"])
        .arg(env!("CARGO_BIN_EXE_confo"))
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("CONFO_BACKEND")
        .env("CONFO_CONFIG", env.path("profiles.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while temporaries(folder).is_empty() {
        assert!(std::time::Instant::now() < deadline, "confo {args:?} never made its temporary file");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The writer is strace's child: killed first, so nothing finishes the write.
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", tracer.id())).expect("children");
    for pid in children.split_whitespace() {
        std::process::Command::new("kill").args(["-9", pid]).status().expect("kill");
    }
    let _ = tracer.kill();
    let _ = tracer.wait();
    assert!(!temporaries(folder).is_empty(), "the killed writer left its temporary file");
}

#[test]
fn a_dead_writers_temporary_files_go_with_the_next_write_and_every_namespace_read() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    let folder = env.root().join("app");
    for name in ["a", "b", "c"] {
        env.ok(&["set", &format!("app/{name}"), "v=1"]);
    }
    // The next write to the same configuration removes what a dead writer of it left.
    kill_mid_write(&env, &folder, &["set", "app/a", "v=2"]);
    env.ok(&["set", "app/a", "v=3"]);
    assert_eq!(temporaries(&folder), Vec::<String>::new());
    // A read of the whole namespace removes them.
    kill_mid_write(&env, &folder, &["set", "app/b", "v=2"]);
    env.ok(&["ls", "app"]);
    assert_eq!(temporaries(&folder), Vec::<String>::new());
    // So does a batch.
    kill_mid_write(&env, &folder, &["set", "app/c", "v=2"]);
    fs::write(env.path("doc.json"), r#"{"app": {"a": {"v": 4}, "b": {"v": 4}}}"#).expect("write");
    env.ok(&["import", "doc.json"]);
    assert_eq!(temporaries(&folder), Vec::<String>::new());
    // One from an older build's naming, planted: a namespace read removes it too.
    fs::write(folder.join(".confo-tmp-4242-7"), "{\"half\": ").expect("plant");
    env.ok(&["ls", "app"]);
    assert_eq!(temporaries(&folder), Vec::<String>::new());
    // What is stored is whole, and the killed writes never landed.
    assert_eq!((env.file("app/a.json")["v"].clone(), env.file("app/c.json")["v"].clone()), (4.into(), 1.into()));
}

#[test]
fn a_point_write_never_lists_the_namespace_folder() {
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    for i in 0..50 {
        env.ok(&["set", &format!("app/c{i}"), "x=1"]);
    }
    let strace = confo_testkit::require_binary("strace", "strace").expect("strace");
    let namespace = env.root().join("app");
    // Many writes: no point write may list it, not even now and then.
    for i in 0..40 {
        let log = env.path("strace.log");
        let out = std::process::Command::new(&strace)
            .args(["-f", "-qq", "-y", "-e", "trace=getdents64", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_confo"))
            .args(["set", &format!("app/c{}", i % 50), &format!("x={}", i + 2)])
            .current_dir(env.dir.path())
            .env_remove("CONFO_BACKEND")
            .env("CONFO_CONFIG", env.path("profiles.toml"))
            .output()
            .expect("strace confo set");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // (`-y` names each folder listed: the configuration's own history folder may be.)
        let listings = fs::read_to_string(&log).expect("log");
        let of_namespace = listings.lines().filter(|l| l.contains(&format!("{}>", namespace.display()))).count();
        assert_eq!(of_namespace, 0, "{listings}");
    }
    assert_eq!(env.file("app/c7.json")["x"], 9);
}

#[test]
fn a_store_whose_parent_is_not_writable_still_saves_without_history() {
    let user = Unprivileged::new();
    // A volume at <env>/volume/config: the store is the user's, the folder above it is not.
    let volume = user.env.path("volume");
    let store = volume.join("config");
    fs::create_dir_all(&store).expect("mkdir");
    if is_root() {
        std::os::unix::fs::chown(&volume, Some(0), Some(0)).expect("chown");
        std::os::unix::fs::chown(&store, Some(NOBODY), Some(NOBODY)).expect("chown");
    }
    fs::set_permissions(&volume, fs::Permissions::from_mode(0o555)).expect("chmod");
    let spec = "file:volume/config";
    user.run(&["-b", spec, "ns", "create", "app"], 0);
    let (_, stderr) = user.run(&["-b", spec, "set", "app/db", "port=5432"], 0);
    assert!(
        stderr.contains(".config.confo") && stderr.contains("meta_path"),
        "one warning naming the folder and the option: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (_, stderr) = user.run(&["-b", spec, "set", "app/db", "port=6432"], 0);
    assert_eq!(stderr.lines().count(), 1, "each writing process warns once: {stderr}");
    let (stdout, _) = user.run(&["-b", spec, "get", "app/db", "port"], 0);
    assert_eq!(stdout.trim(), "6432");
    let (_, stderr) = user.run(&["-b", spec, "history", "app/db"], 3);
    assert!(stderr.contains("cannot be written"), "history says why: {stderr}");
    user.run(&["-b", spec, "log", "app"], 3);
    user.write("schema.json", r#"{"type": "object"}"#);
    let (_, stderr) = user.run(&["-b", spec, "schema", "set", "app", "schema.json"], 5);
    assert!(stderr.contains("meta_path"), "{stderr}");
    assert_eq!(fs::read_dir(&volume).expect("list").count(), 1, "nothing was made beside the store");

    // Given a folder it may write, history is kept there, no looser than the store.
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).expect("chmod");
    let meta = user.env.path("meta");
    let spec = format!("file:volume/config?meta_path={}", meta.display());
    let (_, stderr) = user.run(&["-b", &spec, "set", "app/db", "port=7432"], 0);
    assert!(stderr.is_empty(), "{stderr}");
    let (stdout, _) = user.run(&["-b", &spec, "history", "app/db", "--output", "json"], 0);
    let history: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(history.as_array().is_some_and(|revisions| !revisions.is_empty()), "{stdout}");
    for (path, expected) in [(meta.clone(), 0o700), (meta.join("history/app/db"), 0o700)] {
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    let revision = fs::read_dir(meta.join("history/app/db")).expect("list").flatten().next().expect("a revision");
    assert_eq!(mode(&revision.path()), 0o600, "a revision no looser than the store");
    fs::set_permissions(&volume, fs::Permissions::from_mode(0o755)).expect("chmod back");
}

/// A store mounted read-only (a ConfigMap, a read-only volume): every read works and nothing is
/// attempted that could fail for want of writing (no metadata folder, no temporary files, no
/// sweep); a write says the file system is read-only. Each command runs in a private mount
/// namespace (`unshare -m`) that sees the store through a read-only bind mount.
#[test]
fn a_store_mounted_read_only_reads_and_lists() {
    require_root("a_store_mounted_read_only_reads_and_lists");
    let env = Env::new();
    env.ok(&["ns", "create", "app"]);
    env.ok(&["set", "app/db", "port=5432"]);
    // A dead writer's leftover: a reader that may not remove it reads past it.
    fs::write(env.root().join("app/.confo-tmp-0000000000000001"), "{").expect("plant");
    let mount = env.path("ro");
    fs::create_dir(&mount).expect("mkdir");
    let run = |args: &str| {
        let script = format!(
            "mount --bind {root} {mount} && mount -o remount,bind,ro {mount} && exec {confo} -b file:{mount} {args}",
            root = env.root().display(),
            mount = mount.display(),
            confo = env!("CARGO_BIN_EXE_confo"),
        );
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("CONFO_CONFIG", env.path("profiles.toml"))
            .env_remove("CONFO_BACKEND")
            .output()
            .expect("unshare");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("get app/db port");
    assert_eq!((code, out.trim(), err.as_str()), (Some(0), "5432", ""));
    let (code, out, err) = run("ls app");
    assert_eq!((code, out.trim(), err.as_str()), (Some(0), "db", ""));
    let (code, out, _) = run("ns ls");
    assert_eq!((code, out.trim()), (Some(0), "app"));
    let (code, out, _) = run("history app/db --output json");
    assert_eq!(code, Some(0), "history is readable: {out}");
    let (code, _, err) = run("set app/db port=6432");
    assert_ne!(code, Some(0));
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    assert_eq!(env.file("app/db.json")["port"], 5432);
}
