//! etcd (specs `etcd://`, `etcds://`): the ZooKeeper tree as keys, transactions for writes.
//!
//! # Backend details
//!
//! | what | key | value |
//! | --- | --- | --- |
//! | namespace `sales` | `/confo-namespaces/sales` | empty (a marker) |
//! | configuration `database` in `sales` | `/confo/sales/database` | the JSON object, compact |
//!
//! - `etcdctl get --prefix /confo/` shows every configuration and nothing else. Namespaces are
//!   markers under their own prefix, so listing them reads only those keys (keys only), never a
//!   configuration, and a namespace exists while it is empty.
//! - A value that is not JSON or not a JSON object is [`Error::Corrupt`] naming the key; one
//!   over [`EtcdOptions::max_value_bytes`] (below etcd's 1.5 MiB request limit) is
//!   [`Error::TooLarge`] before it is sent.
//! - **Reads**: one transaction reads the marker and the first 2,000 configurations; a
//!   larger namespace continues in pages at the same revision, so the read is one consistent
//!   snapshot.
//! - **Writes**: one transaction (`Txn`) per batch of at most 127 changes (etcd's
//!   default `--max-txn-ops` is 128) and 1,000,000 bytes; each transaction also checks that
//!   the namespace exists and every precondition (`mod_revision` equal, or `create_revision`
//!   0 for "absent"), all-or-nothing. A batch that needs several transactions first checks all
//!   preconditions in read-only transactions, so a conflict writes nothing; transactions then
//!   run concurrently, each atomic; a failure reports those that committed. Deleting a
//!   namespace is one transaction (marker and prefix) whatever its size.
//! - **History**: revisions are keys `/confo-history/<ns>/<cfg>/NNNNNNNNNN`, written in the
//!   configuration's transaction under a compare on its revision (see `history.rs`); the watch
//!   ignores them. With history a value is sent twice, so the largest configuration is 690,000
//!   bytes.
//! - **Versions** are `mod_revision`s.
//! - **Notifications**: one watch on the `/confo` prefix. The watch is opened before a
//!   watcher's first read and re-opened (with a full re-read) after it breaks, so no change
//!   between a read and the watch is missed.
//! - **Auth**: `user:password` (etcd users and roles); a wrong password or a missing permission
//!   is [`Error::Unauthorized`]. TLS with `etcds://` (system roots, or `tls_ca=PATH`).
//! - **Connecting**: a dead endpoint is [`Error::Unavailable`] within the connect timeout (3 s);
//!   with several endpoints the client balances over them and survives losing some.

mod engine;
mod history;
mod options;
mod schema;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use etcd_client as etcd;

pub use options::EtcdOptions;

use super::kit::{chunk_ranges, join_ordered};
use super::{Backend, Capabilities, ChangeSet, Hint, Hints};
use crate::model::change::{Applied, Change, ChangeKind, Precondition, WriteReport};
use crate::model::decode::Sink;
use crate::model::error::{ConfigId, Corruption, Error, Missing, Outage, Result};
use crate::model::name::{ConfigName, NamespaceName};
use crate::model::version::Version;

/// Prefix of the namespace markers.
pub const NAMESPACES_PREFIX: &str = "/confo-namespaces/";
/// Prefix of the configurations.
pub const CONFIGS_PREFIX: &str = "/confo/";
/// Most changes per write transaction (one compare more is the namespace's marker).
pub(crate) const TXN_OPS: usize = 127;
/// Most value bytes per write transaction.
pub(crate) const TXN_BYTES: usize = 1_000_000;
/// Largest configuration when history is recorded: the value and its revision must fit one
/// request together.
pub(crate) const MAX_RECORDED_VALUE_BYTES: usize = 690_000;
/// Configurations read per page.
pub(crate) const PAGE: i64 = 2000;

/// Configurations as keys of an etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

struct Inner {
    describe: String,
    max_value_bytes: usize,
    history: crate::model::history::HistoryOptions,
    client: etcd::Client,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("describe", &self.describe).finish_non_exhaustive()
    }
}

fn marker(namespace: &str) -> String {
    format!("{NAMESPACES_PREFIX}{namespace}")
}

fn config_prefix(namespace: &str) -> String {
    format!("{CONFIGS_PREFIX}{namespace}/")
}

/// The end of the key range that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdBackend {
    /// Connects (and authenticates), and checks that the cluster answers.
    ///
    /// ```no_run
    /// # async fn demo() -> confo::Result<()> {
    /// use confo::backend::etcd::{EtcdBackend, EtcdOptions};
    /// let backend = EtcdBackend::connect(EtcdOptions::from_url("etcd://127.0.0.1:2379")?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
        crate::backend::install_crypto_provider();
        let describe = options.describe();
        let mut connect = etcd::ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(std::time::Duration::from_secs(5), std::time::Duration::from_secs(3));
        if let (Some(user), Some(password)) = (&options.username, &options.password) {
            connect = connect.with_user(user.clone(), password.expose());
        }
        if options.tls {
            let mut tls = etcd::TlsOptions::new();
            if let Some(path) = &options.tls_ca {
                let pem = super::read_tls_ca(&describe, path)?;
                tls = tls.ca_certificate(etcd::Certificate::from_pem(pem));
            }
            connect = connect.with_tls(tls);
        }
        let urls = options.endpoint_urls();
        super::kit::connect_within("etcd", &describe, &options.endpoints, options.connect_timeout, || {
            let (urls, connect, describe) = (urls.clone(), connect.clone(), describe.clone());
            async move {
                let client = etcd::Client::connect(urls, Some(connect)).await.map_err(|e| map_error(&describe, e))?;
                let backend = EtcdBackend {
                    inner: Arc::new(Inner {
                        describe,
                        // With history a value is sent twice (the key and its revision).
                        max_value_bytes: if options.history.enabled {
                            options.max_value_bytes.min(MAX_RECORDED_VALUE_BYTES)
                        } else {
                            options.max_value_bytes
                        },
                        history: options.history,
                        client,
                    }),
                };
                // The connection is lazy: ask something now, so a dead endpoint or a missing
                // permission shows at once.
                backend.list_namespaces().await?;
                Ok(backend)
            }
        })
        .await
    }

    fn client(&self) -> etcd::Client {
        self.inner.client.clone()
    }

    /// A read through the cluster; see [`retry_unsent`].
    async fn get(
        &self,
        key: impl Into<Vec<u8>> + Clone,
        options: Option<etcd::GetOptions>,
    ) -> Result<etcd::GetResponse> {
        retry_unsent(|| {
            let mut client = self.client();
            let (key, options) = (key.clone(), options.clone());
            async move { client.get(key, options).await }
        })
        .await
        .map_err(|e| self.map_error(e))
    }

    /// One transaction, at one revision: the namespace's marker ([`Error::NotFound`] when it is
    /// absent) and `get`'s answer; with the revision, for reading further pages at it.
    async fn with_marker(&self, namespace: &str, get: etcd::TxnOp) -> Result<(etcd::GetResponse, i64)> {
        let resp = self.txn(etcd::Txn::new().and_then([etcd::TxnOp::get(marker(namespace), None), get])).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let mut responses = resp.op_responses().into_iter();
        let (Some(etcd::TxnOpResponse::Get(marker_resp)), Some(etcd::TxnOpResponse::Get(answer))) =
            (responses.next(), responses.next())
        else {
            return Err(Error::unavailable(self.describe(), "unexpected transaction response"));
        };
        if marker_resp.kvs().is_empty() {
            return Err(self.missing_namespace(namespace));
        }
        Ok((answer, revision))
    }

    /// A transaction through the cluster; see [`retry_unsent`].
    async fn txn(&self, txn: etcd::Txn) -> Result<etcd::TxnResponse> {
        transact(self.client(), txn).await.map_err(|e| self.map_error(e))
    }

    fn map_error(&self, e: etcd::Error) -> Error {
        map_error(&self.inner.describe, e)
    }

    /// Hands a configuration's stored bytes to `sink`, or what is wrong with them and where.
    fn hand(&self, sink: &dyn Sink, key: &str, name: &str, bytes: &[u8], version: Version) {
        if let Err(refused) = sink.entry(name.to_owned(), bytes, version) {
            let corruption = Corruption { location: self.location(key), problem: refused.described() };
            sink.corrupt(refused.name, corruption, Some(refused.version));
        }
    }

    fn location(&self, key: &str) -> String {
        format!("{} key {key:?}", self.inner.describe)
    }

    fn missing_namespace(&self, namespace: &str) -> Error {
        Error::not_found(Missing::Namespace, namespace, self.inner.describe.clone())
    }

    /// After a transaction failed its compares: which one, as an error.
    async fn explain_failed_compares(&self, namespace: &str, changes: &[&Change]) -> Error {
        match self.get(marker(namespace), None).await {
            Ok(resp) if resp.kvs().is_empty() => return self.missing_namespace(namespace),
            Err(e) => return e,
            Ok(_) => {}
        }
        for change in changes {
            let key = format!("{}{}", config_prefix(namespace), change.name);
            let current = match self.get(key.clone(), None).await {
                Ok(resp) => resp.kvs().first().map(|kv| kv.mod_revision()),
                Err(e) => return e,
            };
            let holds = match &change.precondition {
                Precondition::Any => true,
                Precondition::Absent => current.is_none(),
                Precondition::Version(v) => current.is_some_and(|rev| v.as_number() == Some(rev)),
            };
            if !holds {
                return Error::conflict(self.location(&key), Some(ConfigId::new(namespace, &change.name)));
            }
        }
        // Changed back meanwhile: still a conflict, without a name.
        Error::conflict(format!("{} namespace {namespace:?}", self.inner.describe), None)
    }
}

/// True for an error that says the request never left: the connection to the chosen member
/// was refused (a member that is down but still in the client's balancing set). Such a request
/// can be sent again safely, even a write.
fn never_sent(e: &etcd::Error) -> bool {
    let text = e.to_string();
    text.contains("tcp connect error") || text.contains("Connection refused")
}

/// Runs a request, again up to 4 times while it fails without having been sent.
async fn retry_unsent<T, F, Fut>(mut request: F) -> std::result::Result<T, etcd::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match request().await {
            Err(e) if attempt < 5 && never_sent(&e) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            other => return other,
        }
    }
}

async fn transact(client: etcd::Client, txn: etcd::Txn) -> std::result::Result<etcd::TxnResponse, etcd::Error> {
    retry_unsent(|| {
        let mut client = client.clone();
        let txn = txn.clone();
        async move { client.txn(txn).await }
    })
    .await
}

fn map_error(describe: &str, e: etcd::Error) -> Error {
    classify(describe, &e).caused_by(e)
}

/// The error a driver's error means, worded about the store.
fn classify(describe: &str, e: &etcd::Error) -> Error {
    if let etcd::Error::GRpcStatus(status) = &e {
        // gRPC codes: 16 unauthenticated, 7 permission denied, 3 invalid argument (etcd answers
        // a wrong password or a missing user name with it).
        let code = i32::from(status.code());
        let message = status.message();
        let auth = code == 16
            || code == 7
            || (code == 3
                && (message.contains("authentication")
                    || message.contains("user name")
                    || message.contains("password")));
        if auth {
            return Error::unauthorized(describe.to_owned(), message.to_owned());
        }
    }
    let (outage, message) = plain_message(e);
    Error::outage(outage, describe, message)
}

/// What an etcd client error means, as a sentence about the server: not tonic's chain of
/// transport errors.
///
/// The driver gives some of these only in its message: it is read here, once, at the edge, and
/// what it means goes on as an [`Outage`] that callers branch on.
fn plain_message(e: &etcd::Error) -> (Outage, String) {
    let (message, whole) = match e {
        etcd::Error::GRpcStatus(status) => (status.message().to_owned(), format!("{e:?}")),
        other => (other.to_string(), format!("{other:?}")),
    };
    let lower = format!("{message} {whole}").to_ascii_lowercase();
    if lower.contains("invalidcontenttype") || lower.contains("certificate") || lower.contains("handshake") {
        (
            Outage::Mismatch,
            "the TLS handshake failed (check etcds:// against the member's TLS setting, and tls_ca)".into(),
        )
    } else if lower.contains("h2 protocol error")
        || lower.contains("http2 error")
        || lower.contains("frame with invalid size")
    {
        (
            Outage::Mismatch,
            "it answered something other than etcd's gRPC (an HTTP/1 server? a TLS port? use etcds:// for TLS)".into(),
        )
    } else if lower.contains("tcp connect error") || lower.contains("connection refused") {
        (Outage::NotReached, "the connection was refused".into())
    } else if lower.contains("transport error") || lower.contains("connection reset") || lower.contains("broken pipe") {
        (Outage::Other, "the server closed the connection".into())
    } else if lower.contains("timed out") || lower.contains("deadline") {
        (Outage::Other, "no answer in time".into())
    } else if message.is_empty() {
        (Outage::Other, e.to_string())
    } else {
        (Outage::Other, message)
    }
}

/// The compare that makes a change's precondition part of a transaction.
fn compare(key: &str, precondition: &Precondition) -> Option<etcd::Compare> {
    match precondition {
        Precondition::Any => None,
        Precondition::Absent => Some(etcd::Compare::create_revision(key, etcd::CompareOp::Equal, 0)),
        Precondition::Version(v) => {
            // Our etcd versions are mod revisions (> 0); anything else never matches.
            let revision = v.as_number().filter(|r| *r > 0).unwrap_or(-1);
            Some(etcd::Compare::mod_revision(key, etcd::CompareOp::Equal, revision))
        }
    }
}

impl EtcdBackend {
    /// Reads a namespace's configurations page by page at one revision, calling `each` with
    /// every one's key, name, stored bytes and version, in key order.
    async fn read_pages(&self, namespace: &str, mut each: impl FnMut(&str, &str, &[u8], Version) + Send) -> Result<()> {
        let prefix = config_prefix(namespace);
        let end = prefix_end(&prefix);
        let first_page =
            etcd::TxnOp::get(prefix.clone(), Some(etcd::GetOptions::new().with_range(end.clone()).with_limit(PAGE)));
        let (mut page, revision) = self.with_marker(namespace, first_page).await?;
        loop {
            for kv in page.kvs() {
                let Ok(key) = kv.key_str() else { continue };
                let Some(name) = key.strip_prefix(&prefix) else { continue };
                if !crate::model::name::is_valid(name) {
                    continue; // a deeper key, or one we would never write
                }
                each(key, name, kv.value(), Version::number(kv.mod_revision()));
            }
            if !page.more() {
                break;
            }
            let Some(last) = page.kvs().last() else { break };
            let mut next = last.key().to_vec();
            next.push(0);
            let options = etcd::GetOptions::new().with_range(end.clone()).with_limit(PAGE).with_revision(revision);
            page = self.get(next, Some(options)).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            notifies: true,
            notifies_every_change: true,
            max_value_bytes: Some(self.inner.max_value_bytes),
            history: self.inner.history.enabled,
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = %self.inner.describe))]
    async fn list_namespaces(&self) -> Result<Vec<String>> {
        let options = etcd::GetOptions::new().with_prefix().with_keys_only();
        let resp = self.get(NAMESPACES_PREFIX, Some(options)).await?;
        let mut names: Vec<String> = resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(NAMESPACES_PREFIX).map(str::to_owned))
            .filter(|n| crate::model::name::is_valid(n))
            .collect();
        names.sort();
        Ok(names)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn create(&self, namespace: &NamespaceName) -> Result<bool> {
        let namespace = namespace.as_str();
        let key = marker(namespace);
        let txn = etcd::Txn::new()
            .when([etcd::Compare::create_revision(key.clone(), etcd::CompareOp::Equal, 0)])
            .and_then([etcd::TxnOp::put(key, "", None)]);
        let resp = self.txn(txn).await?;
        Ok(resp.succeeded())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(backend = %self.inner.describe))]
    async fn delete(&self, namespace: &NamespaceName) -> Result<()> {
        let namespace = namespace.as_str();
        let key = marker(namespace);
        let txn = etcd::Txn::new()
            .when([etcd::Compare::create_revision(key.clone(), etcd::CompareOp::Greater, 0)])
            .and_then([
                etcd::TxnOp::delete(config_prefix(namespace), Some(etcd::DeleteOptions::new().with_prefix())),
                etcd::TxnOp::delete(key, None),
            ]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(self.missing_namespace(namespace))
        }
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.inner.describe))]
    async fn read_one(&self, namespace: &NamespaceName, name: &ConfigName, sink: Arc<dyn Sink>) -> Result<()> {
        let (namespace, name) = (namespace.as_str(), name.as_str());
        let key = format!("{}{name}", config_prefix(namespace));
        let (found, _) = self.with_marker(namespace, etcd::TxnOp::get(key.clone(), None)).await?;
        if let Some(kv) = found.kvs().first() {
            self.hand(&*sink, &key, name, kv.value(), Version::number(kv.mod_revision()));
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, sink), fields(backend = %self.inner.describe))]
    async fn scan(&self, namespace: &NamespaceName, sink: Arc<dyn Sink>) -> Result<()> {
        // Each decoded as its page is read (a page's bytes are freed with the page).
        self.read_pages(namespace.as_str(), |key, name, bytes, version| self.hand(&*sink, key, name, bytes, version))
            .await
    }

    #[tracing::instrument(level = "debug", skip(self, changes), fields(backend = %self.inner.describe, changes = changes.len()))]
    async fn apply(&self, namespace: &NamespaceName, changes: &ChangeSet<'_>) -> WriteReport {
        let namespace = namespace.as_str();
        let changes_set = changes;
        let changes: &[Change] = changes;
        let prefix = config_prefix(namespace);
        let mut encoded = Vec::with_capacity(changes.len());
        for change in changes {
            let key = format!("{prefix}{}", change.name);
            let value = match &change.kind {
                ChangeKind::Put(value) => match serde_json::to_vec(&**value) {
                    Ok(bytes) if bytes.len() > self.inner.max_value_bytes => {
                        return WriteReport::failed(Error::TooLarge {
                            location: self.location(&key),
                            size: bytes.len(),
                            limit: self.inner.max_value_bytes,
                        })
                    }
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        return WriteReport::failed(Error::InvalidValue {
                            location: self.location(&key),
                            message: e.to_string(),
                        })
                    }
                },
                ChangeKind::Delete => None,
            };
            encoded.push((change, key, value));
        }
        if self.inner.history.enabled {
            return self.apply_recorded(namespace, changes_set.author(), encoded).await;
        }
        // Transactions bounded in operations and bytes.
        let size = |i: usize| encoded[i].1.len() + encoded[i].2.as_ref().map_or(0, Vec::len);
        let chunks: Vec<&[(&Change, String, Option<Vec<u8>>)]> =
            chunk_ranges(encoded.len(), TXN_OPS, TXN_BYTES, size).into_iter().map(|r| &encoded[r]).collect();
        let namespace_exists = || etcd::Compare::create_revision(marker(namespace), etcd::CompareOp::Greater, 0);

        // Several transactions: check every precondition first, so a conflict writes nothing.
        let checked: Vec<&(&Change, String, Option<Vec<u8>>)> =
            encoded.iter().filter(|(c, _, _)| c.precondition != Precondition::Any).collect();
        if chunks.len() > 1 && !checked.is_empty() {
            for group in checked.chunks(TXN_OPS) {
                let mut compares = vec![namespace_exists()];
                compares.extend(group.iter().filter_map(|(c, key, _)| compare(key, &c.precondition)));
                match self.txn(etcd::Txn::new().when(compares)).await {
                    Ok(resp) if resp.succeeded() => {}
                    Ok(_) => {
                        let culprits: Vec<&Change> = group.iter().map(|(c, _, _)| *c).collect();
                        return WriteReport::failed(self.explain_failed_compares(namespace, &culprits).await);
                    }
                    Err(e) => return WriteReport::failed(e),
                }
            }
        }

        // All transactions in flight at once.
        let outcomes = join_ordered(chunks.iter().map(|chunk| {
            let mut compares = vec![namespace_exists()];
            let mut ops = Vec::with_capacity(chunk.len());
            for (change, key, value) in chunk.iter() {
                compares.extend(compare(key, &change.precondition));
                ops.push(match value {
                    Some(bytes) => etcd::TxnOp::put(key.clone(), bytes.clone(), None),
                    None => etcd::TxnOp::delete(key.clone(), None),
                });
            }
            let client = self.client();
            async move { transact(client, etcd::Txn::new().when(compares).and_then(ops)).await }
        }))
        .await;
        let mut report = WriteReport::default();
        for (chunk, outcome) in chunks.iter().zip(outcomes) {
            match outcome {
                Ok(resp) if resp.succeeded() => {
                    let revision = resp.header().map_or(0, |h| h.revision());
                    for (change, _, value) in chunk.iter() {
                        let version = value.as_ref().map(|_| Version::number(revision));
                        report.applied.push(Applied { name: change.name.clone(), version });
                    }
                }
                Ok(_) if report.error.is_none() => {
                    let culprits: Vec<&Change> = chunk.iter().map(|(c, _, _)| *c).collect();
                    report.error = Some(self.explain_failed_compares(namespace, &culprits).await);
                }
                Err(e) if report.error.is_none() => report.error = Some(self.map_error(e)),
                _ => {}
            }
        }
        report
    }

    async fn history(&self, namespace: &NamespaceName, name: &ConfigName) -> Result<crate::model::history::History> {
        self.read_history(namespace.as_str(), name.as_str()).await
    }

    async fn history_names(&self, namespace: &NamespaceName) -> Result<Vec<String>> {
        self.history_configurations(namespace.as_str()).await
    }

    async fn rewrite_history(
        &self,
        namespace: &NamespaceName,
        name: &ConfigName,
        rewrite: &crate::model::history::Rewrite,
    ) -> Result<Vec<u64>> {
        self.rewrite_records(namespace.as_str(), name.as_str(), rewrite).await
    }

    async fn schema_document(&self, namespace: &NamespaceName) -> Result<Option<(Vec<u8>, Version)>> {
        self.read_schema(namespace.as_str()).await
    }

    async fn put_schema_document(
        &self,
        namespace: &NamespaceName,
        document: Option<Vec<u8>>,
        precondition: &Precondition,
    ) -> Result<Option<Version>> {
        self.write_schema(namespace.as_str(), document, precondition).await
    }

    async fn subscribe(&self) -> Result<Option<Hints>> {
        let this = self.clone();
        Ok(Some(super::spawn_subscription(move |tx| {
            let this = this.clone();
            async move {
                let mut client = this.client();
                let mut stream = match client.watch("/confo", Some(etcd::WatchOptions::new().with_prefix())).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(backend = %this.inner.describe, error = %e, "watch failed; retrying");
                        return;
                    }
                };
                let _ = tx.send(Hint::All);
                // Ends when the watch breaks or is cancelled.
                while let Ok(Some(response)) = stream.message().await {
                    if response.canceled() {
                        break;
                    }
                    let mut namespaces = HashSet::new();
                    for event in response.events() {
                        let Some(key) = event.kv().and_then(|kv| kv.key_str().ok()) else { continue };
                        let namespace = key
                            .strip_prefix(CONFIGS_PREFIX)
                            .and_then(|rest| rest.split('/').next())
                            .or_else(|| key.strip_prefix(NAMESPACES_PREFIX));
                        if let Some(ns) = namespace {
                            namespaces.insert(ns.to_owned());
                        }
                    }
                    for ns in namespaces {
                        let _ = tx.send(Hint::Namespace(ns));
                    }
                }
            }
        })))
    }
}
