//! Secrets through the CLI on the file backend: sealed at rest, masked unless revealed, bound to
//! their place, rotated, and never shown where they should not be.

mod common;

use common::Env;

fn with_secret() -> Env {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    env.ok(&["set", "sales/db", "host=h", "port=5432"]);
    assert_eq!(env.ok(&["keys", "new"]).trim(), "k1");
    let out = env.run_with_stdin(&["secret", "set", "sales/db", "password"], "hunter2\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env
}

#[test]
fn a_secret_is_sealed_at_rest_and_masked_unless_revealed() {
    let env = with_secret();
    let raw = std::fs::read_to_string(env.root().join("sales/db.json")).unwrap();
    assert!(!raw.contains("hunter2") && raw.contains("$confo_secret"), "{raw}");
    let masked: serde_json::Value = serde_json::from_str(&env.ok(&["get", "sales/db"])).unwrap();
    assert_eq!(masked["password"], "<secret>");
    assert_eq!(masked["port"], 5432);
    let revealed: serde_json::Value = serde_json::from_str(&env.ok(&["get", "sales/db", "--reveal"])).unwrap();
    assert_eq!(revealed["password"], "hunter2");
    assert_eq!(env.ok(&["get", "sales/db", "password"]).trim(), "\"<secret>\"");
    assert_eq!(env.ok(&["secrets", "ls"]).trim(), "sales/db\t/password\tk1");
    // A number stays a number.
    env.run_with_stdin(&["secret", "set", "sales/db", "pin"], "1234");
    assert_eq!(env.ok(&["get", "sales/db", "pin", "--reveal"]).trim(), "1234");
    // The keyring is private; one others may read is refused.
    use std::os::unix::fs::PermissionsExt;
    let keys = env.path("keys.toml");
    assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = env.fails(&["get", "sales/db", "--reveal"], 5);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_copied_ciphertext_does_not_open_and_nothing_leaks_in_logs() {
    let env = with_secret();
    // Copy the sealed value into another field with a raw edit of the file.
    let path = env.root().join("sales/db.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["token"] = doc["password"].clone();
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let err = env.fails(&["get", "sales/db", "--reveal"], 1);
    assert!(err.contains("field /token") && !err.contains("hunter2"), "{err}");
    // -vv of every command that touched the secret shows no plaintext.
    let out = env.run_with_stdin(&["-vv", "secret", "set", "sales/db", "password"], "hunter2");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
    let out = env.run(&["-vv", "get", "sales/db", "password"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
    // No keyring: --reveal says how to make one; plain get still works.
    std::fs::remove_file(env.path("keys.toml")).unwrap();
    let err = env.fails(&["get", "sales/db", "--reveal"], 1);
    assert!(err.contains("confo keys new"), "{err}");
    env.ok(&["get", "sales/db"]);
}

#[test]
fn rotation_reseals_under_the_new_primary_so_the_old_key_can_go() {
    let env = with_secret();
    assert_eq!(env.ok(&["keys", "new", "k2"]).trim(), "k2");
    env.ok(&["keys", "primary", "k2"]);
    assert_eq!(env.ok(&["keys", "ls"]), "  k1\n* k2\n");
    let err = env.fails(&["keys", "rm", "k2"], 1);
    assert!(err.contains("primary"), "{err}");
    let said = env.stderr(&["secrets", "rotate"]);
    assert!(said.contains("1 secret(s)"), "{said}");
    assert_eq!(env.ok(&["secrets", "ls"]).trim(), "sales/db\t/password\tk2");
    env.ok(&["keys", "rm", "k1"]);
    let revealed: serde_json::Value = serde_json::from_str(&env.ok(&["get", "sales/db", "--reveal"])).unwrap();
    assert_eq!(revealed["password"], "hunter2");
}

#[test]
fn python_confo_still_loads_a_namespace_with_secrets() {
    // scripts/test.sh installs confo 0.1.6.2 there and sets CONFO_PY_COMPAT.
    let python = std::env::var_os("CONFO_PY_COMPAT")
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/confo-py-compat/bin/python").into());
    let env = with_secret();
    let script = format!(
        "from confo.Confo import Confo\nimport confo.Backends as BE\nc = Confo()\n\
         c.load_backend(credentials={{'config_path': {:?}}}, name='f', backend_type=BE.FILE_BACKEND)\n\
         c.activate_backend('f')\nc.use_namespace('sales')\nprint(sorted(c.get('db')['password']))\n",
        env.root().display().to_string()
    );
    let out = std::process::Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['$confo_secret']");
}

#[test]
fn export_keeps_secrets_encrypted_unless_revealed_and_import_keeps_them_valid() {
    let env = with_secret();
    let sealed = env.ok(&["export"]);
    assert!(!sealed.contains("hunter2") && sealed.contains("$confo_secret"), "{sealed}");
    let clear = env.ok(&["export", "--reveal"]);
    assert!(clear.contains("hunter2"), "{clear}");
    // An export imported elsewhere keeps its names, so its secrets still open there.
    std::fs::write(env.path("backup.json"), &sealed).unwrap();
    std::fs::create_dir(env.path("other")).unwrap();
    let other = format!("file:{}", env.path("other").display());
    env.ok(&["--backend", &other, "import", "backup.json"]);
    let revealed: serde_json::Value =
        serde_json::from_str(&env.ok(&["--backend", &other, "get", "sales/db", "--reveal"])).unwrap();
    assert_eq!(revealed["password"], "hunter2");
}

#[test]
fn no_command_logs_a_secret_at_any_verbosity() {
    let env = with_secret();
    for args in [
        &["-vv", "ls", "sales"][..],
        &["-vv", "get", "sales/db"],
        &["-vv", "get", "sales/db", "--reveal"],
        &["-vv", "export"],
        &["-vv", "export", "--reveal"],
        &["-vv", "secrets", "ls"],
        &["-vv", "secrets", "rotate"],
    ] {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let logged = String::from_utf8_lossy(&out.stderr);
        assert!(!logged.contains("hunter2"), "{args:?} logged the secret: {logged}");
    }
}

#[test]
fn a_profile_names_its_keyring() {
    let env = Env::new();
    env.ok(&["ns", "create", "sales"]);
    let keys = env.path("prod-keys.toml");
    let spec = format!("file:{}", env.root().display());
    env.ok(&["backend", "add", "prod", &spec, "--keys", keys.to_str().unwrap()]);
    // CONFO_KEYS unset: the profile's keyring is the one used, even by `keys new`.
    let run = |args: &[&str], stdin: &str| {
        let mut command = env.command(args);
        command.env_remove("CONFO_KEYS");
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["-b", "prod", "keys", "new"], "");
    assert!(keys.exists(), "the profile's keyring was made");
    run(&["-b", "prod", "secret", "set", "sales/db", "password"], "hunter2");
    assert!(run(&["-b", "prod", "get", "sales/db", "--reveal"], "").contains("hunter2"));
}

#[test]
fn an_import_that_moves_a_secret_is_refused_whole() {
    let env = with_secret();
    let mut doc: serde_json::Value = serde_json::from_str(&env.ok(&["export"])).unwrap();
    // Renamed configuration: its ciphertext was sealed for sales/db.
    let db = doc["sales"].as_object_mut().unwrap().remove("db").unwrap();
    doc["sales"]["renamed"] = db;
    doc["sales"]["other"] = serde_json::json!({"plain": 1});
    std::fs::write(env.path("moved.json"), doc.to_string()).unwrap();
    let err = env.fails(&["import", "moved.json"], 1);
    assert!(err.contains("sales/renamed field /password") && err.contains("--reveal"), "{err}");
    assert!(!env.root().join("sales/other.json").exists(), "nothing of the import was written");
}

/// `export --reveal -o FILE` holds every secret in the clear: the file is created 0600 and
/// whole (a temporary file renamed over it), never written through a link planted at its name
/// (exit 5, the link's target untouched); a device is written directly; a repeat works.
#[test]
fn a_revealed_export_is_private_and_never_follows_a_planted_link() {
    use std::os::unix::fs::PermissionsExt;
    let env = with_secret();
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let out = env.path("backup.json");
    for _ in 0..2 {
        env.ok(&["export", "--reveal", "-o", out.to_str().unwrap()]);
        assert!(std::fs::read_to_string(&out).unwrap().contains("hunter2"));
        assert_eq!(mode(&out), 0o600, "a revealed export is private");
    }
    // An existing file others could read is replaced by a private one.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.ok(&["export", "--reveal", "-o", out.to_str().unwrap()]);
    assert_eq!(mode(&out), 0o600);
    let yaml = env.path("backup.yaml");
    env.ok(&["export", "--reveal", "-o", yaml.to_str().unwrap()]);
    assert_eq!(mode(&yaml), 0o600);
    // A link planted at the name, to a file that is not there yet or to one that is.
    let target = env.path("planted-target.json");
    let link = env.path("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let said = env.fails(&["export", "--reveal", "-o", link.to_str().unwrap()], 5);
    assert!(said.contains("symbolic link"), "{said}");
    assert!(!target.exists(), "nothing written through the link");
    std::fs::write(&target, "mine\n").unwrap();
    env.fails(&["export", "--reveal", "-o", link.to_str().unwrap()], 5);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine\n");
    // A device (through /dev/stdout, itself a link): written directly.
    let shown = env.ok(&["export", "--reveal", "-o", "/dev/stdout"]);
    assert!(shown.contains("hunter2"), "{shown}");
    let leftovers: Vec<_> = std::fs::read_dir(env.path("."))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // What confo keeps beside a private store (history, which holds sealed values and whatever
    // was stored in the clear before): no looser than the store's folder.
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.ok(&["set", "sales/fresh", "a=1"]);
    env.ok(&["set", "sales/fresh", "a=2"]);
    let meta = env.root().parent().unwrap().join(".Configurations.confo");
    let mut seen = 0;
    let mut stack = vec![meta];
    while let Some(path) = stack.pop() {
        let m = mode(&path);
        if path.is_dir() {
            assert_eq!(m & 0o077, 0, "{} is {m:o} beside a 0700 store", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else {
            assert_eq!(m & 0o077, 0, "{} is {m:o} beside a 0700 store", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2, "the revisions were looked at");
}

/// A sealed value inside an array is masked and listed like any other (issue 33, item 7); one
/// that does not open where it is (planted: a sealed value is bound to its place) does not stop
/// `secrets rotate`, which rotates everything else, lists it and exits 1 (item 6).
#[test]
fn sealed_values_in_arrays_are_masked_and_a_rotation_goes_on_past_what_does_not_open() {
    let env = with_secret();
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.root().join("sales/db.json")).unwrap()).unwrap();
    let sealed = stored["password"].clone();
    assert!(sealed.get("$confo_secret").is_some(), "{sealed}");
    // Copied by a writer without the keys into a list (where it does not open: bound to
    // sales/db /password), in a namespace listed before `sales`.
    env.ok(&["ns", "create", "app"]);
    let planted = serde_json::json!({"users": [{"name": "a", "password": sealed}, {"name": "b"}]});
    std::fs::write(env.root().join("app/pool.json"), planted.to_string()).unwrap();
    let shown: serde_json::Value = serde_json::from_str(&env.ok(&["get", "app/pool"])).unwrap();
    assert_eq!(shown["users"][0]["password"], "<secret>", "{shown}");
    assert!(!env.ok(&["get", "app/pool"]).contains("$confo_secret"));
    let listed = env.ok(&["secrets", "ls"]);
    assert!(listed.lines().any(|l| l == "app/pool\t/users/0/password\tk1"), "{listed}");
    // A new primary key: sales/db's secret is rotated although app/pool's does not open.
    assert_eq!(env.ok(&["keys", "new", "k2"]).trim(), "k2");
    env.ok(&["keys", "primary", "k2"]);
    let out = env.run(&["secrets", "rotate"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("1 secret(s) re-encrypted") && said.contains("app/pool /users/0/password"), "{said}");
    let listed = env.ok(&["secrets", "ls"]);
    assert!(listed.lines().any(|l| l == "sales/db\t/password\tk2"), "rotated: {listed}");
    assert_eq!(env.ok(&["get", "sales/db", "password", "--reveal"]).trim(), "\"hunter2\"");
}

/// One rule for every writer (issue 33, item 3): a plain value written where a secret is sealed
/// is sealed again with the keyring, refused without it (exit 2, nothing written); a rollback to
/// a revision from before the field was made secret seals it too; `secret unset` turns it back
/// into a plain value on purpose.
#[test]
fn a_plain_value_over_a_secret_is_sealed_again_or_refused_never_stored_in_the_clear() {
    let env = with_secret();
    let file = env.root().join("sales/db.json");
    env.ok(&["set", "sales/db", "password=rotated-by-hand"]);
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(!raw.contains("rotated-by-hand") && raw.contains("$confo_secret"), "{raw}");
    assert_eq!(env.ok(&["get", "sales/db", "password", "--reveal"]).trim(), "\"rotated-by-hand\"");
    // The same with a whole JSON replacement, and through an import.
    env.ok(&["set", "sales/db", "--json", r#"{"host": "h", "port": 5432, "password": "whole"}"#]);
    assert!(!std::fs::read_to_string(&file).unwrap().contains("whole"));
    std::fs::write(env.path("doc.json"), r#"{"sales": {"db": {"host": "h", "port": 5432, "password": "imported"}}}"#)
        .unwrap();
    env.ok(&["import", "doc.json"]);
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(!raw.contains("imported") && raw.contains("$confo_secret"), "{raw}");
    assert_eq!(env.ok(&["get", "sales/db", "password", "--reveal"]).trim(), "\"imported\"");
    // Without the keyring: refused, the file untouched.
    let keys = env.path("keys.toml");
    let kept = env.path("keys.kept");
    std::fs::rename(&keys, &kept).unwrap();
    let before = std::fs::read(&file).unwrap();
    let said = env.fails(&["set", "sales/db", "password=clear"], 2);
    assert!(said.contains("/password") && said.contains("secret unset"), "{said}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing written");
    env.ok(&["set", "sales/db", "host=h2"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap().matches("$confo_secret").count(), 1, "other fields still write");
    std::fs::rename(&kept, &keys).unwrap();
    // A revision holding a plain value where a secret is now: rolling back to it seals it.
    env.ok(&["secret", "unset", "sales/db", "password"]);
    env.ok(&["set", "sales/db", "password=plain-once"]);
    let plain_revision = env.ok(&["history", "sales/db", "--output", "json"]);
    let plain_revision: serde_json::Value = serde_json::from_str(&plain_revision).unwrap();
    let number = plain_revision.as_array().and_then(|r| r.first()).and_then(|r| r["number"].as_u64()).expect("newest");
    assert!(env.run_with_stdin(&["secret", "set", "sales/db", "password"], "sealed-now").status.success());
    env.ok(&["rollback", "sales/db", "--to", &number.to_string()]);
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(!raw.contains("plain-once") && raw.contains("$confo_secret"), "{raw}");
    assert_eq!(env.ok(&["get", "sales/db", "password", "--reveal"]).trim(), "\"plain-once\"");
    // On purpose: `secret unset` stores it in the clear.
    assert!(env.run_with_stdin(&["secret", "set", "sales/db", "password"], "again").status.success());
    env.ok(&["secret", "unset", "sales/db", "password"]);
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(raw.contains("\"again\"") && !raw.contains("$confo_secret"), "{raw}");
    env.fails(&["secret", "unset", "sales/db", "/password"], 3);
}

/// Issue 33, item 4: a field made secret after it was stored stays in the clear in the earlier
/// revisions. `secret set` says so, with the way out; `history --purge-field` replaces it there
/// by a marker (numbers unchanged) and records the purge; a rollback to such a revision keeps
/// the secret as it is sealed now.
#[test]
fn a_field_made_secret_later_is_purged_from_history_on_request() {
    let env = Env::new();
    env.ok(&["ns", "create", "s"]);
    env.ok(&["set", "s/db", "host=h", "password=plain-text-pw"]);
    env.ok(&["set", "s/db", "host=h2"]);
    assert_eq!(env.ok(&["keys", "new"]).trim(), "k1");
    let out = env.run_with_stdin(&["secret", "set", "s/db", "password"], "sealed-pw");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("revision(s) 1, 2") && said.contains("--purge-field password"), "{said}");
    assert!(said.contains("etcd") && said.contains("AOF") && said.contains("backups"), "{said}");
    assert!(env.ok(&["show", "s/db@1"]).contains("plain-text-pw"));
    let meta = env.root().parent().unwrap().join(".Configurations.confo");
    let holds = |text: &str| {
        let mut stack = vec![meta.clone()];
        let mut found = false;
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
            } else if std::fs::read_to_string(&path).unwrap_or_default().contains(text) {
                found = true;
            }
        }
        found
    };
    assert!(holds("plain-text-pw"));
    let out = env.run(&["history", "s/db", "--purge-field", "password"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("revision(s) 1, 2"), "{said}");
    assert!(!holds("plain-text-pw"), "the plaintext is gone from every revision");
    let history: serde_json::Value = serde_json::from_str(&env.ok(&["history", "s/db", "--output", "json"])).unwrap();
    let numbers: Vec<u64> = history.as_array().unwrap().iter().map(|r| r["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [4, 3, 2, 1], "numbers unchanged, the purge recorded as revision 4");
    assert!(history[0]["message"].as_str().unwrap_or_default().contains("history purge: /password"), "{history}");
    let first: serde_json::Value = serde_json::from_str(&env.ok(&["show", "s/db@1", "--output", "json"])).unwrap();
    assert!(first.to_string().contains("$confo_purged") && first["host"] == "h", "{first}");
    // Purging again finds nothing; a rollback to a purged revision keeps the secret sealed now.
    assert!(env.stderr(&["history", "s/db", "--purge-field", "/password"]).contains("no revision"));
    env.ok(&["rollback", "s/db", "--to", "1"]);
    assert_eq!(env.ok(&["get", "s/db", "password", "--reveal"]).trim(), "\"sealed-pw\"");
    assert_eq!(env.ok(&["get", "s/db", "host"]).trim(), "\"h\"");
}
