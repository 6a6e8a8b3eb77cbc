//! What the CLI test files share: a hermetic environment for running the real binary.

#![allow(dead_code)] // each test file uses a different part

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A temp dir with an empty `Configurations/` folder, used as the working directory, and a
/// profiles file of its own, so no user's CONFO_BACKEND or profiles reach the tests.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("Configurations")).expect("mkdir");
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> PathBuf {
        self.path("Configurations")
    }

    /// `confo ARGS` in the temp dir, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_confo"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("CONFO_BACKEND")
            .env_remove("RUST_LOG")
            .env_remove("CONFO_ACTOR")
            .env("CONFO_CONFIG", self.path("profiles.toml"))
            .env("CONFO_KEYS", self.path("keys.toml"))
            .env("CONFO_TOKENS", self.path("tokens.json"));
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run confo")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Runs and asserts the exit code; returns stdout.
    pub fn expect(&self, args: &[&str], code: i32) -> String {
        check(self.run(args), args, code)
    }

    /// Runs and asserts the exit code; returns stderr (what a failure says).
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        check(out.clone(), args, code);
        String::from_utf8(out.stderr).expect("utf-8")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    pub fn stderr(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(args).stderr).expect("utf-8")
    }

    /// Runs confo under a pseudo-terminal (util-linux `script`) and returns what the terminal
    /// showed.
    pub fn on_a_terminal(&self, args: &str, no_color: bool) -> String {
        let mut command = Command::new("script");
        command
            .args(["-qec", &format!("'{}' {args}", env!("CARGO_BIN_EXE_confo")), "/dev/null"])
            .current_dir(self.dir.path())
            .env_remove("CONFO_BACKEND")
            .env("CONFO_CONFIG", self.path("profiles.toml"))
            .env("CONFO_KEYS", self.path("keys.toml"))
            .env("CONFO_TOKENS", self.path("tokens.json"));
        if no_color {
            command.env("NO_COLOR", "1");
        } else {
            command.env_remove("NO_COLOR");
        }
        let out = command.output().expect("script (util-linux) runs confo on a pseudo-terminal");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file of the store, parsed.
    pub fn file(&self, rel: &str) -> Value {
        serde_json::from_slice(&fs::read(self.root().join(rel)).expect("read")).expect("json")
    }
}

/// Asserts an exit code (showing both streams if it differs); returns stdout.
pub fn check(out: Output, args: &[&str], code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "confo {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The unprivileged user tests run `confo` as when they run as root.
pub const NOBODY: u32 = 65534;

/// Whether the tests run as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Gives `path` and everything below it to [`NOBODY`].
pub fn chown_tree(path: &std::path::Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
    if fs::symlink_metadata(path).expect("stat").is_dir() {
        for entry in fs::read_dir(path).expect("list").flatten() {
            chown_tree(&entry.path());
        }
    }
}

/// `confo` run as an unprivileged user when the tests run as root (so root's right to open
/// anything cannot hide a fault), else as the current user. The binary is copied into the
/// environment's folder so that user can run it wherever the build tree lives.
pub struct Unprivileged {
    pub env: Env,
    pub binary: PathBuf,
    pub tmp: PathBuf,
}

impl Unprivileged {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let env = Env::new();
        let binary = env.path("confo");
        fs::copy(env!("CARGO_BIN_EXE_confo"), &binary).expect("copy the binary");
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).expect("chmod");
        let tmp = env.path("tmp");
        fs::create_dir(&tmp).expect("mkdir tmp");
        if is_root() {
            chown_tree(env.dir.path());
        }
        Unprivileged { env, binary, tmp }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"]);
            c.arg(&self.binary);
            c
        } else {
            Command::new(&self.binary)
        };
        command
            .args(args)
            .current_dir(self.env.dir.path())
            .env_remove("CONFO_BACKEND")
            .env_remove("RUST_LOG")
            .env("CONFO_CONFIG", self.env.path("profiles.toml"))
            .env("HOME", self.env.dir.path())
            .env("TMPDIR", &self.tmp);
        command
    }

    /// Runs and asserts the exit code; returns (stdout, stderr).
    pub fn run(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.command(args).output().expect("run confo");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (check(out, args, code), stderr)
    }

    /// A file the unprivileged user owns.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.env.path(rel);
        fs::write(&path, content).expect("write");
        if is_root() {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).expect("chown");
        }
        path
    }
}
