//! The console end to end in a real browser: Debian's Chromium, headless, driven by its
//! ChromeDriver over WebDriver (fantoccini), against the server on a loopback port over a real
//! file store. Sign in, create a namespace and a configuration, edit it, meet a conflict, see a
//! schema violation, roll back from history, watch a live update arrive, keep a filter across
//! pages, compare two namespaces, reveal a secret.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`); it
//! fails, saying so, without them. With `CONFO_SCREENSHOTS=DIR` it saves the main pages as PNG
//! files there (how `docs/screenshots` is made).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use confo::secrets::Keyring;
use confo::Store;
use confo_serve::auth::{Role, TokenFile, Tokens};
use confo_serve::{router, App, Settings};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// ChromeDriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let program = confo_testkit::require_binary("chromedriver", "chromium-driver").expect("chromedriver");
    let profile = tempfile::tempdir().expect("profile folder");
    let port = confo_testkit::free_port();
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, port, _profile: profile };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = TcpStream::connect(("127.0.0.1", port)).ok().and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
            let (mut answer, mut buffer) = (Vec::new(), [0u8; 4096]);
            while !String::from_utf8_lossy(&answer).contains("\"ready\"") {
                let n = s.read(&mut buffer).ok()?;
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buffer[..n]);
            }
            Some(String::from_utf8_lossy(&answer).contains("\"ready\":true"))
        });
        if ready == Some(true) {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready on port {port} within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn browser(driver: &Driver) -> Client {
    let chromium = confo_testkit::require_binary("chromium", "chromium").expect("chromium");
    let args = json!([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // A laptop-sized window; taller when taking screenshots, so a page fits in one.
        if std::env::var_os("CONFO_SCREENSHOTS").is_some() {
            "--window-size=1024,1300"
        } else {
            "--window-size=1024,768"
        },
        format!("--user-data-dir={}", driver._profile.path().display()),
    ]);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

struct Console {
    base: String,
    store: Store,
    admin: String,
    keyring: Keyring,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start_console() -> Console {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("Configurations");
    std::fs::create_dir(&root).expect("store folder");
    let mut file = TokenFile::default();
    let admin = file.add("alice", vec![Role::Admin, Role::Reveal], "*", "*").expect("token");
    let path = dir.path().join("tokens.json");
    file.save(&path).expect("tokens");
    let mut keyring = Keyring::new();
    keyring.generate(None).expect("key");
    let keys = dir.path().join("keys.toml");
    keyring.save(&keys).expect("save keys");
    let spec = format!("file:{}", root.display()).parse().expect("spec");
    let store = Store::open(&spec).await.expect("store");
    // A second backend, to compare with: a staging copy where one value differs.
    let staging_root = dir.path().join("Staging");
    std::fs::create_dir_all(staging_root.join("sales")).expect("staging folder");
    std::fs::write(staging_root.join("sales/database.json"), r#"{"host": "staging-db", "port": 5432}"#).expect("write");
    let staging = Store::open(&format!("file:{}", staging_root.display()).parse().expect("spec")).await.expect("store");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watch = confo::WatchOptions::default().poll_every(Duration::from_millis(200));
    let settings = Settings { watch, ..Settings::default() };
    let app = App::new(
        vec![("main".into(), store.clone()), ("staging".into(), staging)],
        Some(Tokens::open(&path).expect("tokens")),
        Some(keyring),
        settings,
        stopped.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut stopped_for_serve = stopped;
    tokio::spawn(confo_serve::listen::serve(
        listener,
        router(app),
        None,
        confo_serve::listen::Limits::default(),
        async move {
            let _ = stopped_for_serve.wait_for(|s| *s).await;
        },
    ));
    Console { base, store, admin, keyring: Keyring::load(&keys).expect("keys"), _dir: dir, _stop: stop }
}

async fn wait_css(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within 10 s: {e}"))
}

/// Waits until `script` (a JS expression) is true.
async fn wait_true(client: &Client, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = client.execute(&format!("return !!({script});"), vec![]).await.expect("script");
        if value == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not so within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, once there (a page being replaced is waited
/// out rather than read half-way).
async fn text(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{css} did not appear within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the first element matching `css` says `expected`.
async fn wait_text(client: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = text(client, css).await;
        if found == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{css} says {found:?}, not {expected:?}, after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CONFO_SCREENSHOTS") {
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// Replaces the editor's text by typing (select all, then the new text).
async fn type_into_editor(client: &Client, value: &str) {
    let editor = wait_css(client, "#editor").await;
    editor.clear().await.expect("clear");
    editor.send_keys(value).await.expect("type");
}

async fn stored(store: &Store, ns: &str, cfg: &str) -> Value {
    Value::Object((*store.get(ns, cfg).await.expect("read").expect("stored").value).clone())
}

/// A page left open while its store goes down for longer than the server's watcher waits: the
/// event stream ends, and reconnecting is refused with a 503 (which a browser never retries by
/// itself) until the store is back. The console opens the stream again by itself, and the page
/// follows changes again once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_page_follows_changes_again_once_the_store_is_back() {
    let driver = start_driver();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = confo_testkit::RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
        .expect("redis-server");
    let store = Store::open(&redis.url().parse().expect("spec")).await.expect("store");
    store.create_namespace("sales").await.expect("create");
    let value = |v: Value| serde_json::from_value::<confo::Configuration>(v).expect("map");
    store.put("sales", "database", value(json!({"v": "before"})), Default::default()).await.expect("put");
    let mut file = TokenFile::default();
    let admin = file.add("alice", vec![Role::Admin], "*", "*").expect("token");
    let path = dir.path().join("tokens.json");
    file.save(&path).expect("tokens");
    // The watcher notices an outage within half a second and gives up after one.
    let watch = confo::WatchOptions::default()
        .resync_every(Duration::from_millis(500))
        .give_up_after(Some(Duration::from_secs(1)));
    let settings = Settings { watch, ..Settings::default() };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let tokens = Some(Tokens::open(&path).expect("tokens"));
    let app = App::new(vec![("main".into(), store.clone())], tokens, None, settings, stopped.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut until = stopped;
    let limits = confo_serve::listen::Limits::default();
    tokio::spawn(confo_serve::listen::serve(listener, router(app), None, limits, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    let client = browser(&driver).await;
    client.goto(&format!("{base}/console")).await.expect("goto");
    wait_css(&client, "#token").await.send_keys(&admin).await.expect("type");
    wait_css(&client, "button[type=submit]").await.click().await.expect("click");
    wait_text(&client, "h1", "Namespaces").await;
    client.goto(&format!("{base}/console/b/main/ns/sales/c/database")).await.expect("goto");
    wait_true(&client, "document.getElementById('editor').value.includes('before')", "the page").await;

    // Down for long enough: the stream ends, the browser reconnects (after its usual 3 s) and
    // is refused with 503 while the store is down.
    redis.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    redis.restart().expect("restart");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        // Written again until it shows: a write made before the stream is back is read on
        // reconnecting (as after a resync), one made after arrives as an event.
        let _ = store.put("sales", "database", value(json!({"v": "after"})), Default::default()).await;
        let shown = client
            .execute("return document.getElementById('editor').value.includes('after');", vec![])
            .await
            .expect("script");
        if shown == Value::Bool(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the page never followed changes again after the store came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let driver = start_driver();
    let console = start_console().await;
    let client = browser(&driver).await;
    let result = scenario(&client, &console).await;
    let _ = client.close().await;
    result
}

async fn scenario(client: &Client, console: &Console) {
    let base = &console.base;
    let store = &console.store;

    // Sign in: a wrong token is refused, the right one lands on the namespaces.
    client.goto(&format!("{base}/console")).await.expect("goto");
    wait_css(client, "#token").await.send_keys("confo_wrong").await.expect("type");
    shot(client, "login").await;
    wait_css(client, "button[type=submit]").await.click().await.expect("click");
    assert!(text(client, "p.error").await.contains("not known"));
    wait_css(client, "#token").await.send_keys(&console.admin).await.expect("type");
    wait_css(client, "button[type=submit]").await.click().await.expect("click");
    wait_text(client, "h1", "Namespaces").await;
    assert!(text(client, ".who").await.contains("alice"));

    // Create a namespace, then a configuration in it.
    wait_css(client, "#new-ns-main").await.send_keys("sales").await.expect("type");
    client.find(Locator::XPath("//button[text()='Create']")).await.expect("button").click().await.expect("click");
    wait_text(client, "h1", "Namespace sales").await;
    wait_css(client, "#new-config").await.send_keys("database").await.expect("type");
    client.find(Locator::XPath("//button[text()='Create']")).await.expect("button").click().await.expect("click");
    wait_text(client, "h1", "Configuration database").await;
    type_into_editor(client, r#"{"host": "db", "port": 5432}"#).await;
    wait_css(client, "#valid").await;
    wait_css(client, "table.diff").await;
    shot(client, "editor-diff").await;
    wait_css(client, "#save").await.click().await.expect("save");
    assert!(text(client, "#saved").await.contains("Saved"));
    assert_eq!(stored(store, "sales", "database").await, json!({"host": "db", "port": 5432}));

    // Edit again while someone else saves first: the page says so, saving reports the conflict,
    // and overwriting is a choice.
    type_into_editor(client, r#"{"host": "db", "port": 5433}"#).await;
    wait_true(client, "document.querySelector('#check td.added') && document.querySelector('#check td.added').textContent.includes('5433')", "the diff of the edit").await;
    let other = serde_json::from_value(json!({"host": "theirs", "port": 1})).expect("map");
    let version = store.get("sales", "database").await.expect("read").expect("there").version;
    store
        .put("sales", "database", other, confo::model::change::Precondition::Version(version))
        .await
        .expect("their write");
    wait_true(client, "document.getElementById('live').textContent.includes('Someone else')", "live notice").await;
    wait_css(client, "#save").await.click().await.expect("save");
    assert!(text(client, "#conflict").await.contains("Someone else saved this configuration first"));
    shot(client, "conflict").await;
    assert_eq!(stored(store, "sales", "database").await, json!({"host": "theirs", "port": 1}), "nothing overwritten");
    client
        .find(Locator::XPath("//button[contains(., 'Overwrite')]"))
        .await
        .expect("overwrite")
        .click()
        .await
        .expect("click");
    wait_css(client, "#saved").await;
    assert_eq!(stored(store, "sales", "database").await, json!({"host": "db", "port": 5433}));

    // A schema violation, shown while typing and refused on saving.
    store
        .set_schema(
            "sales",
            None,
            Some(json!({"type": "object", "properties": {"port": {"type": "integer", "maximum": 65535}}})),
            None,
        )
        .await
        .expect("schema");
    client.refresh().await.expect("reload");
    type_into_editor(client, r#"{"host": "db", "port": 70000}"#).await;
    let violations = text(client, "#violations").await;
    assert!(violations.contains("/port") && violations.contains("65535"), "{violations}");
    shot(client, "schema-violation").await;
    wait_css(client, "#save").await.click().await.expect("save");
    assert!(text(client, "#save-error").await.contains("schema"));
    assert_eq!(stored(store, "sales", "database").await["port"], 5433, "the violation was not written");
    // Syntax errors are shown as typed, with where.
    type_into_editor(client, r#"{"host": "db", "port": }"#).await;
    assert!(text(client, "#syntax").await.contains("line 1"));

    // History: side-by-side diffs, and a rollback to the first revision.
    client.goto(&format!("{base}/console/b/main/ns/sales/c/database/history")).await.expect("goto");
    wait_css(client, "#rev-1").await;
    assert!(text(client, "#rev-3").await.contains("alice"), "the token's name is the actor");
    shot(client, "history").await;
    client
        .find(Locator::XPath("//button[text()='Roll back to revision 1']"))
        .await
        .expect("rollback button")
        .click()
        .await
        .expect("click");
    client.accept_alert().await.expect("confirm the rollback");
    wait_css(client, "#rev-4").await;
    assert!(text(client, "#rev-4 h2").await.contains("of revision 1"));
    assert_eq!(stored(store, "sales", "database").await, json!({"host": "db", "port": 5432}));

    // Live update: a page left open shows what another client saved.
    client.goto(&format!("{base}/console/b/main/ns/sales/c/database")).await.expect("goto");
    wait_css(client, "#valid").await;
    store
        .put(
            "sales",
            "database",
            serde_json::from_value(json!({"host": "live", "port": 7})).expect("map"),
            Default::default(),
        )
        .await
        .expect("write");
    wait_true(client, "document.getElementById('editor').value.includes('live')", "the live update").await;
    assert!(text(client, "#live").await.contains("Updated"));

    // Secrets: masked, revealed on request for a token that may.
    store.set_secret("sales", "payments", "token", json!("s3cret-value"), &console.keyring).await.expect("secret");
    client.goto(&format!("{base}/console/b/main/ns/sales/c/payments")).await.expect("goto");
    wait_true(client, "document.getElementById('editor').value.includes('<secret>')", "the secret masked").await;
    let source = client.source().await.expect("page");
    assert!(!source.contains("s3cret-value"), "the masked page does not carry the secret");
    client.find(Locator::LinkText("Reveal secrets")).await.expect("reveal link").click().await.expect("click");
    wait_true(client, "document.getElementById('editor').value.includes('s3cret-value')", "the secret revealed").await;

    // The filter survives going to another page and back.
    store.create_namespace("hr").await.expect("namespace");
    store
        .put(
            "hr",
            "database",
            serde_json::from_value(json!({"host": "db", "port": 1})).expect("map"),
            Default::default(),
        )
        .await
        .expect("write");
    client.goto(&format!("{base}/console")).await.expect("goto");
    wait_css(client, "#filter").await.send_keys("sal").await.expect("type");
    wait_true(client, "document.querySelector('tr[data-name=hr]').hidden", "hr filtered out").await;
    shot(client, "namespaces").await;
    client.find(Locator::LinkText("sales")).await.expect("link").click().await.expect("click");
    wait_text(client, "h1", "Namespace sales").await;
    client.back().await.expect("back");
    wait_true(client, "document.getElementById('filter').value === 'sal'", "the filter kept").await;
    wait_true(client, "document.querySelector('tr[data-name=hr]').hidden", "hr still filtered out").await;

    // Compare two namespaces: only the differences.
    client.goto(&format!("{base}/console/compare?left=main/sales&right=main/hr")).await.expect("goto");
    let differences = text(client, "#differences").await;
    assert!(differences.contains("/host") && differences.contains("live"), "{differences}");
    assert!(differences.contains("payments") && differences.contains("missing"), "{differences}");
    shot(client, "compare").await;
    // Two whole backends: every namespace, named NS/CONFIG.
    client.goto(&format!("{base}/console/compare?left=main&right=staging")).await.expect("goto");
    let differences = text(client, "#differences").await;
    assert!(differences.contains("sales/database") && differences.contains("staging-db"), "{differences}");
    assert!(differences.contains("hr/database") && differences.contains("missing"), "{differences}");

    // Keyboard: the first Tab reaches the skip link.
    client.goto(&format!("{base}/console")).await.expect("goto");
    wait_css(client, "h1").await;
    client.active_element().await.expect("focus").send_keys("\u{E004}").await.expect("tab");
    wait_true(client, "document.activeElement && document.activeElement.className === 'skip'", "tab to the skip link")
        .await;
}
