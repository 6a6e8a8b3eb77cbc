//! What an attacker on the same machine, or a hostile store, must not be able to do through the
//! CLI: read or plant `confo edit`'s temporary file, read passwords from profiles, drive the
//! operator's terminal with names and values. Tests that root would pass for the wrong reason
//! run the binary as an unprivileged user (`setpriv`, uid 65534).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{check, is_root, Env, Unprivileged};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("stat").permissions().mode() & 0o777
}

impl Unprivileged {
    fn edit_entries(&self) -> Vec<PathBuf> {
        let mut entries: Vec<PathBuf> = fs::read_dir(&self.tmp)
            .expect("list tmp")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("confo-edit-")))
            .collect();
        entries.sort();
        entries
    }
}

fn wait_for(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The issue's attack: links to a victim file planted at every name the old code could use for
/// the next 300 process ids. The editor must get a fresh private file, the victim must stay
/// untouched, and nothing may be left behind.
#[test]
fn edit_uses_a_private_file_and_follows_no_planted_link() {
    let u = Unprivileged::new();
    check(u.command(&["ns", "create", "sales"]).output().expect("run"), &["ns create"], 0);
    check(u.command(&["set", "sales/db", "password=hunter2"]).output().expect("run"), &["set"], 0);
    let victim = u.write("victim.txt", "precious\n");
    let last_pid: u32 =
        fs::read_to_string("/proc/sys/kernel/ns_last_pid").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(1000);
    for pid in last_pid..last_pid + 300 {
        let _ = std::os::unix::fs::symlink(&victim, u.tmp.join(format!("confo-edit-{pid}-db.json")));
    }
    let planted = u.edit_entries();
    let log = u.env.path("editor.log");
    let editor = u.write(
        "editor.sh",
        &format!(
            "#!/bin/sh\nprintf '%s %s %s\\n' \"$1\" \"$(stat -c %a \"$1\")\" \"$(stat -c %a \"$(dirname \"$1\")\")\" > {}\n\
             sed -i 's/hunter2/rotated/' \"$1\"\n",
            log.display()
        ),
    );
    let out = u.command(&["edit", "sales/db"]).env("EDITOR", format!("sh {}", editor.display())).output().expect("run");
    check(out, &["edit"], 0);

    let logged = fs::read_to_string(&log).expect("the editor ran");
    let fields: Vec<&str> = logged.split_whitespace().collect();
    let (file, file_mode, dir_mode) = (Path::new(fields[0]), fields[1], fields[2]);
    assert_eq!((file_mode, dir_mode), ("600", "700"), "private file in a private folder: {logged}");
    assert!(file.starts_with(&u.tmp) && !planted.iter().any(|p| p == file), "a fresh path: {logged}");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious\n", "the planted link was not followed");
    assert!(!file.exists() && !file.parent().expect("dir").exists(), "removed after the edit");
    assert_eq!(u.edit_entries(), planted, "only the planted links remain");
    let stored = fs::read_to_string(u.env.root().join("sales/db.json")).expect("stored");
    assert!(stored.contains("rotated"), "{stored}");
}

/// SIGTERM while the editor runs removes the file; after SIGKILL, the next edit sweeps it (but
/// never a folder of a live process or of another user).
#[test]
fn edit_cleans_up_after_signals_and_kill_9() {
    let u = Unprivileged::new();
    check(u.command(&["ns", "create", "sales"]).output().expect("run"), &["ns create"], 0);
    check(u.command(&["set", "sales/db", "password=hunter2"]).output().expect("run"), &["set"], 0);
    let started = u.env.path("started");
    let editor = u.write("slow-editor.sh", &format!("#!/bin/sh\necho \"$1\" > {}\nsleep 3\n", started.display()));
    let foreign = u.tmp.join("confo-edit-999999-foreign");
    if is_root() {
        fs::create_dir(&foreign).expect("a root-owned leftover");
    }

    for (signal, code) in [("TERM", Some(143)), ("KILL", None)] {
        let _ = fs::remove_file(&started);
        let mut child = u
            .command(&["edit", "sales/db"])
            .env("EDITOR", format!("sh {}", editor.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let file = PathBuf::from(wait_for(&started).trim());
        assert!(file.exists());
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(status.expect("kill").success());
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), code, "{signal}");
        let left = file.parent().expect("dir").exists();
        match signal {
            "TERM" => assert!(!left, "SIGTERM removes the private folder"),
            _ => assert!(left, "SIGKILL cannot be caught: the folder stays until the next edit"),
        }
    }
    // The next edit (an editor that changes nothing) sweeps the dead run's folder.
    let out = u.command(&["edit", "sales/db"]).env("EDITOR", "true").output().expect("run");
    check(out, &["edit"], 0);
    let expected: Vec<PathBuf> = if is_root() { vec![foreign] } else { Vec::new() };
    assert_eq!(u.edit_entries(), expected, "only another user's folder is left");
}

#[test]
fn profiles_are_private_and_never_show_passwords() {
    let env = Env::new();
    let config = env.path("conf/confo/profiles.toml");
    let run = |args: &[&str]| env.command(args).env("CONFO_CONFIG", &config).output().expect("run");
    check(run(&["backend", "add", "prod", "redis://:hunter2@127.0.0.1:1"]), &["backend add"], 0);
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().expect("dir")), 0o700);

    // A file made readable is refused for use (exit 5), warned about when managed, and private
    // again after the next save.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
    let used = run(&["-b", "prod", "ns", "ls"]);
    let said = String::from_utf8_lossy(&used.stderr).into_owned();
    assert_eq!(used.status.code(), Some(5), "{said}");
    assert!(said.contains("chmod 600") && said.contains("\"prod\"") && !said.contains("hunter2"), "{said}");
    let added = run(&["backend", "add", "local", "file:./Configurations"]);
    let said = String::from_utf8_lossy(&added.stderr).into_owned();
    assert!(added.status.success() && said.contains("warning") && !said.contains("hunter2"), "{said}");
    assert_eq!(mode(&config), 0o600, "the save made it private again");
    // A reference, not a literal, may sit in a readable file.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
    check(run(&["backend", "rm", "prod"]), &["backend rm"], 0);
    check(run(&["backend", "add", "ref", "redis://:${PW}@127.0.0.1:1"]), &["backend add"], 0);
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
    check(run(&["-b", "local", "ns", "ls"]), &["ns ls"], 0);

    // Listings redact, in every format.
    check(run(&["backend", "add", "prod", "zk://alice:hunter2@127.0.0.1:1/team"]), &["backend add"], 0);
    for format in [None, Some("json"), Some("yaml"), Some("toml")] {
        let mut args = vec!["backend", "ls"];
        if let Some(format) = format {
            args.extend(["--output", format]);
        }
        let shown = check(run(&args), &args, 0);
        assert!(!shown.contains("hunter2") && shown.contains("zk://alice:***@127.0.0.1:1/team"), "{format:?}: {shown}");
        assert!(shown.contains("${PW}"), "references are shown: {shown}");
    }

    // A syntax error names the line, never its text.
    fs::write(&config, "[backends]\nprod = \"redis://:hunter2@10.0.0.5:6379\n").expect("write");
    let broken = run(&["backend", "ls"]);
    let said = String::from_utf8_lossy(&broken.stderr).into_owned();
    assert_eq!(broken.status.code(), Some(1), "{said}");
    assert!(said.contains("line 2") && !said.contains("hunter2"), "{said}");
}

#[test]
fn names_and_values_from_the_store_cannot_drive_the_terminal() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    // Values: the table escapes them; JSON escapes control characters itself.
    env.ok(&["set", "sales/db", "title=\x1b]0;pwned\x07\x1b[2J"]);
    for format in ["table", "json"] {
        let shown = env.ok(&["get", "sales/db", "--output", format]);
        assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{format}: {shown:?}");
    }
    assert!(env.ok(&["get", "sales/db", "--output", "table"]).contains("\\u{1b}]0;pwned"));
    // C1 controls (U+009B is a CSI, the start of a sequence on many terminals) too, in every
    // format: JSON escapes them always (the same value), TOML on a terminal, YAML itself.
    env.ok(&["set", "sales/c1", "--json", r#"{"title": "a\u009b2Jb\u0085c"}"#]);
    let c1 = |text: &str| text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c));
    for format in ["table", "json", "yaml"] {
        let shown = env.ok(&["get", "sales/c1", "--output", format]);
        assert!(!c1(&shown), "{format}: {shown:?}");
    }
    let json = env.ok(&["get", "sales/c1", "--output", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).expect("json")["title"], "a\u{9b}2Jb\u{85}c");
    for args in ["get sales/c1 --output toml", "get sales/c1 --output json", "export sales"] {
        let shown = env.on_a_terminal(args, true);
        assert!(!c1(&shown) && shown.contains("\\u009b"), "{args}: {shown:?}");
    }

    // New names with bidirectional overrides are refused; existing ones are listed, escaped on
    // a terminal and as stored when piped (so scripts can still address them).
    let spoof = "invoice\u{202E}gpj.exe";
    env.expect(&["ns", "create", spoof], 2);
    let refused = env.run(&["set", &format!("sales/{spoof}"), "a=1"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("U+202E"));
    fs::write(env.root().join(format!("sales/{spoof}.json")), "{\"a\": 1}\n").expect("an old file");
    let piped = env.ok(&["ls", "sales"]);
    assert!(piped.lines().any(|l| l == spoof), "{piped:?}");
    assert_eq!(env.ok(&["get", &format!("sales/{spoof}"), "a"]), "1\n", "still readable");
    let shown = env.on_a_terminal("ls sales", true);
    assert!(shown.contains("invoice\\u{202e}gpj.exe") && !shown.contains('\u{202E}'), "{shown:?}");
    env.ok(&["rm", &format!("sales/{spoof}")]);
}

/// New names: no invisible or direction characters, NFC only, and no namespace that is the
/// same text as an existing one in another Unicode form (issue 33, item 10). Names made before
/// stay readable, and are shown escaped on a terminal.
#[test]
fn new_names_are_visible_nfc_and_not_canonical_twins() {
    let env = Env::new();
    for name in ["pay\u{200B}ments", "pay\u{200E}ments", "pay\u{FEFF}ments", "pay\u{2028}ments", "pay\u{E0041}"] {
        let said = env.fails(&["ns", "create", name], 2);
        assert!(said.contains("U+"), "{name:?}: {said}");
    }
    env.ok(&["ns", "create", "sales"]);
    let said = env.fails(&["set", "sales/cafe\u{301}", "a=1"], 2);
    assert!(said.contains("NFC") && said.contains("caf\u{e9}"), "{said}");
    // A namespace made before the rule, in NFD: readable; its NFC twin is refused.
    fs::create_dir(env.root().join("cafe\u{301}")).expect("an old folder");
    fs::write(env.root().join("cafe\u{301}/db.json"), "{\"a\": 1}\n").expect("an old file");
    assert_eq!(env.ok(&["get", "cafe\u{301}/db", "a"]), "1\n");
    let said = env.fails(&["ns", "create", "caf\u{e9}"], 2);
    assert!(said.contains("same text"), "{said}");
    assert!(!env.root().join("caf\u{e9}").exists());
    // An old name holding a zero-width space: listed as stored when piped, escaped on a terminal.
    fs::create_dir(env.root().join("pay\u{200B}ments")).expect("an old folder");
    assert!(env.ok(&["ns", "ls"]).lines().any(|l| l == "pay\u{200B}ments"));
    let shown = env.on_a_terminal("ns ls", true);
    assert!(shown.contains("pay\\u{200b}ments") && !shown.contains('\u{200B}'), "{shown:?}");
}

/// A Redis index entry written by another program holds a terminal escape: `ls` and `ns ls`
/// show it escaped, piped or not.
#[test]
fn redis_index_entries_are_escaped() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let port = server.port().to_string();
    let redis_cli = |args: &[&str]| {
        let out = Command::new("redis-cli").args(["-p", &port]).args(args).output().expect("redis-cli");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    redis_cli(&["SET", "confo", "{\"namespaces\":[\"ops\",\"x\\u001b[2J\"]}"]);
    redis_cli(&["SET", "ops", "{\"configurations\":[\"\\u001b[2Jcleared\"]}"]);
    redis_cli(&["SET", "ops-\x1b[2Jcleared", "{}"]);
    let env = Env::new();
    let url = server.url();
    for listing in [env.ok(&["-b", &url, "ls", "ops"]), env.ok(&["-b", &url, "ns", "ls"])] {
        assert!(!listing.contains('\x1b') && listing.contains("\\u{1b}[2J"), "{listing:?}");
    }
    let shown = env.on_a_terminal(&format!("-b {url} ls ops"), true);
    assert!(!shown.contains('\x1b') && shown.contains("\\u{1b}[2Jcleared"), "{shown:?}");
}
