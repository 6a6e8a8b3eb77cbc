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
