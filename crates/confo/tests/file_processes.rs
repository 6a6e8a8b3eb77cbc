//! The file backend under several processes: writers killed with SIGKILL at random moments,
//! and writers persisting into one folder at once.
//!
//! The child processes are this test binary itself, re-run on one `#[ignore]`d test that acts
//! only when `CONFO_TEST_CHILD` is set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use confo::{BackendExt, Change, FileBackend};
use serde_json::json;

const CONFIGS: usize = 3;

/// The content a crash-test writer stores for configuration `i` at generation `gen`: large
/// enough that a write is often in flight when the kill lands, and self-checking.
fn content(gen: u64, i: usize) -> confo::Configuration {
    let pad: String = (0..20_000).map(|k| char::from(b'a' + ((gen as usize + i + k) % 26) as u8)).collect();
    json!({"gen": gen, "i": i, "pad": pad}).as_object().expect("object").clone()
}

fn spawn_child(role: &str, dir: &Path, arg: &str) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .args(["child_entry", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("CONFO_TEST_CHILD", role)
        .env("CONFO_TEST_DIR", dir)
        .env("CONFO_TEST_ARG", arg)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// The child side. Does nothing unless run by one of the tests below.
#[test]
#[ignore = "run as a child process by the tests in this file"]
fn child_entry() {
    let Ok(role) = std::env::var("CONFO_TEST_CHILD") else { return };
    let dir = std::env::var("CONFO_TEST_DIR").expect("dir");
    let arg = std::env::var("CONFO_TEST_ARG").expect("arg");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let backend = FileBackend::open(&dir).expect("open");
        match role.as_str() {
            // Persist ever newer generations of CONFIGS configurations until killed.
            "crash" => {
                let mut gen: u64 = arg.parse().expect("start generation");
                loop {
                    gen += 1;
                    let changes: Vec<Change> =
                        (0..CONFIGS).map(|i| Change::put(format!("c{i}"), content(gen, i))).collect();
                    backend.write("ns", &changes).await.into_result().expect("write");
                }
            }
            // Persist 40 configurations of our own, one batch each, through the manager, and
            // increment a shared counter 40 times.
            "concurrent" => {
                let confo = confo::Confo::new();
                confo.add_backend("f", std::sync::Arc::new(backend)).await.expect("add");
                confo.activate_backend("f").expect("activate");
                confo.use_namespace("ns").await.expect("use");
                for j in 0..40 {
                    confo.set(&format!("p{arg}_c{j}"), "writer", arg.as_str()).expect("set");
                    confo.set(&format!("p{arg}_c{j}"), "j", j).expect("set");
                    confo.persist().await.expect("persist");
                    // Increment a shared counter: read, modify, persist; on a conflict start
                    // again from what is stored.
                    for attempt in 0.. {
                        assert!(attempt < 10_000, "never got an increment through");
                        let count =
                            confo.get_field("shared", "count").expect("get").and_then(|v| v.as_u64()).unwrap_or(0);
                        confo.set("shared", "count", count + 1).expect("set");
                        match confo.persist().await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => {
                                confo.discard_configuration("ns", "shared").expect("discard");
                                confo.reload().await.expect("reload");
                            }
                            Err(e) => panic!("persist: {e}"),
                        }
                    }
                }
            }
            // Load, edit, wait for the go-ahead file, persist, and write the outcome.
            "conflict" => {
                let confo = confo::Confo::new();
                confo.add_backend("f", std::sync::Arc::new(backend)).await.expect("add");
                confo.activate_backend("f").expect("activate");
                confo.use_namespace("ns").await.expect("use");
                confo.set("shared", "writer", arg.as_str()).expect("set");
                let dir = std::path::Path::new(&dir);
                std::fs::write(dir.join(format!(".ready-{arg}")), "").expect("ready");
                while !dir.join(format!(".go-{arg}")).exists() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let outcome = match confo.persist().await {
                    Ok(_) => "written".to_owned(),
                    Err(e) if e.is_conflict() => "conflict".to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                std::fs::write(dir.join(format!(".outcome-{arg}")), outcome).expect("outcome");
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

/// A tiny deterministic generator for kill delays (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_leaves_a_torn_file() {
    const TRIALS: usize = 200;
    let tmp = confo_testkit::store_dir().expect("temp dir");
    // The root is a sub-folder: history is kept beside it.
    let dir = tmp.path().join("root");
    std::fs::create_dir(&dir).expect("root");
    let dir = &dir;
    let backend = FileBackend::open(dir).expect("open");
    backend.create_namespace("ns").await.expect("create");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    let mut last_gen = [0u64; CONFIGS];
    let mut kills_mid_run = 0;
    // Kills that left a revision whose configuration was never renamed into place.
    let mut uncommitted_seen = 0;
    let started = Instant::now();
    for trial in 0..TRIALS {
        let start = last_gen.iter().max().copied().unwrap_or(0);
        let mut child = spawn_child("crash", dir, &start.to_string());
        // Child start-up takes a few ms; kill anywhere from before its first write to deep
        // into its loop.
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(25_000)));
        if child.try_wait().expect("try_wait").is_none() {
            kills_mid_run += 1;
        }
        child.kill().expect("kill");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the child only stops when killed");

        let data = backend.load_namespace("ns").await.unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        for (i, last) in last_gen.iter_mut().enumerate() {
            let Some(stored) = data.get(&format!("c{i}")) else { continue };
            let gen = stored.value["gen"].as_u64().expect("gen");
            assert_eq!(*stored.value, content(gen, i), "trial {trial}: c{i} is exactly one generation's content");
            assert!(gen >= *last, "trial {trial}: c{i} went back from {last} to {gen}");
            *last = gen;
            // History and data agree: the newest revision is the stored value (no data without
            // its revision, no revision without its data), and numbers run without gaps.
            let history = backend.configuration_history("ns", &format!("c{i}")).await.expect("history");
            assert!(history.corrupt.is_empty(), "trial {trial}: {:?}", history.corrupt);
            let newest = history.revisions.first().unwrap_or_else(|| panic!("trial {trial}: c{i} has no history"));
            assert_eq!(newest.value.as_deref(), Some(&*stored.value), "trial {trial}: c{i}'s newest revision");
            let on_disk = std::fs::read_dir(tmp.path().join(".root.confo/history/ns").join(format!("c{i}")))
                .map_or(0, Iterator::count);
            if on_disk > history.revisions.len() {
                uncommitted_seen += 1;
            }
            let numbers: Vec<u64> = history.revisions.iter().map(|r| r.number).collect();
            assert!(numbers.windows(2).all(|w| w[0] == w[1] + 1), "trial {trial}: c{i} numbers {numbers:?}");
            for r in &history.revisions {
                let value = r.value.as_deref().expect("a put");
                let g = value["gen"].as_u64().expect("gen");
                assert_eq!(*value, content(g, i), "trial {trial}: c{i}@{} is one generation's content", r.number);
            }
        }
    }
    eprintln!(
        "{TRIALS} trials in {:?}, {kills_mid_run} killed while running, {uncommitted_seen} uncommitted revisions \
         found (and not listed), last generations {last_gen:?}",
        started.elapsed()
    );
    assert!(uncommitted_seen > 0, "some kills must land between a revision and its configuration");
    assert!(kills_mid_run >= TRIALS / 2, "most kills must land while the child writes");
    assert!(last_gen.iter().all(|&g| g > 0), "the children did write");
    // The next batch write removes whatever temporary files the kills left.
    let empty = json!({}).as_object().expect("object").clone();
    let batch = [confo::Change::put("after", empty.clone()), confo::Change::put("after2", empty)];
    backend.write("ns", &batch).await.into_result().expect("write");
    // The next write of each configuration removes a revision a kill left uncommitted.
    let again: Vec<Change> = (0..CONFIGS).map(|i| Change::put(format!("c{i}"), content(u64::MAX / 2, i))).collect();
    backend.write("ns", &again).await.into_result().expect("write");
    for i in 0..CONFIGS {
        let history = backend.configuration_history("ns", &format!("c{i}")).await.expect("history");
        let on_disk = std::fs::read_dir(tmp.path().join(".root.confo/history/ns").join(format!("c{i}")))
            .expect("history folder")
            .count();
        assert_eq!(on_disk, history.revisions.len(), "c{i}: no uncommitted revision is left on disk");
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir.join("ns"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_several_processes_lose_nothing() {
    const WRITERS: usize = 4;
    let dir = confo_testkit::store_dir().expect("temp dir");
    let backend = FileBackend::open(dir.path()).expect("open");
    backend.create_namespace("ns").await.expect("create");
    let children: Vec<Child> = (0..WRITERS).map(|w| spawn_child("concurrent", dir.path(), &w.to_string())).collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success(), "a writer failed");
    }
    let data = backend.load_namespace("ns").await.expect("every file parses");
    assert_eq!(data.len(), WRITERS * 40 + 1);
    for w in 0..WRITERS {
        for j in 0..40 {
            let stored = &data[&format!("p{w}_c{j}")];
            assert_eq!(stored.value["writer"], json!(w.to_string()));
            assert_eq!(stored.value["j"], json!(j));
        }
    }
    // Every increment of every writer counted: conflict detection lost no update.
    assert_eq!(data["shared"].value["count"], json!(WRITERS * 40));
}

/// Two processes load and edit one configuration; the first to persist wins, the second gets a
/// conflict and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_editing_one_configuration_conflict() {
    let dir = confo_testkit::store_dir().expect("temp dir");
    let backend = FileBackend::open(dir.path()).expect("open");
    backend.create_namespace("ns").await.expect("create");
    backend
        .put_configuration("ns", "shared", json!({"writer": "nobody"}).as_object().expect("object").clone())
        .await
        .expect("put");
    let mut children: Vec<Child> = ["a", "b"].iter().map(|w| spawn_child("conflict", dir.path(), w)).collect();
    let wait_for = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.path().join(name).exists() {
            assert!(Instant::now() < deadline, "{name} never appeared");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(".ready-a");
    wait_for(".ready-b");
    std::fs::write(dir.path().join(".go-a"), "").expect("go a");
    wait_for(".outcome-a");
    std::fs::write(dir.path().join(".go-b"), "").expect("go b");
    wait_for(".outcome-b");
    for child in &mut children {
        assert!(child.wait().expect("wait").success());
    }
    let outcome = |w: &str| std::fs::read_to_string(dir.path().join(format!(".outcome-{w}"))).expect("outcome");
    assert_eq!((outcome("a").as_str(), outcome("b").as_str()), ("written", "conflict"));
    let stored = backend.load_namespace("ns").await.expect("load");
    assert_eq!(stored["shared"].value["writer"], json!("a"), "the second writer did not overwrite the first");
}
