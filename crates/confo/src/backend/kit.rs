//! Pieces every network engine shares, written once: batches cut into chunks bounded in
//! operations and bytes, and requests sent all at once whose answers are wanted in order.
//! (Corrupt entries are collected by [`NamespaceData::insert_corrupt`](crate::model::version::NamespaceData),
//! sorted by name, every one reported.)

#![cfg_attr(not(all(feature = "redis", feature = "zookeeper", feature = "etcd")), allow(dead_code))]

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use crate::model::decode::Sink;
#[cfg(feature = "net")]
use crate::model::error::{Error, Result};
use crate::model::threads::map_on_threads;

/// Cuts `len` items into consecutive ranges of at most `max_ops` items whose sizes (`size` of
/// each index) add up to at most `max_bytes`. An item larger than `max_bytes` goes alone; no
/// range is empty.
pub(crate) fn chunk_ranges(
    len: usize,
    max_ops: usize,
    max_bytes: usize,
    size: impl Fn(usize) -> usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for i in 0..len {
        let item = size(i);
        if i > start && (i - start >= max_ops || bytes + item > max_bytes) {
            ranges.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += item;
    }
    if start < len {
        ranges.push(start..len);
    }
    ranges
}

/// Packs items into groups bounded in operations and bytes, in order (`cost` gives an item's
/// operations and bytes); an item over a bound goes alone.
pub(crate) fn pack<T>(
    items: Vec<T>,
    max_ops: usize,
    max_bytes: usize,
    cost: impl Fn(&T) -> (usize, usize),
) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let (mut ops, mut bytes) = (0, 0);
    for item in items {
        let (item_ops, item_bytes) = cost(&item);
        match groups.last_mut() {
            Some(group) if ops + item_ops <= max_ops && bytes + item_bytes <= max_bytes => {
                ops += item_ops;
                bytes += item_bytes;
                group.push(item);
            }
            _ => {
                (ops, bytes) = (item_ops, item_bytes);
                groups.push(vec![item]);
            }
        }
    }
    groups
}

/// A short pause before trying again after losing a race to another writer: 1 to 20 ms,
/// differing between processes and attempts so that racing writers spread out.
pub(crate) async fn race_pause(attempt: usize) {
    let jitter = u64::from(std::process::id() % 7) + (attempt as u64 % 5) * 3;
    tokio::time::sleep(std::time::Duration::from_millis(1 + jitter)).await;
}

/// Namespaces with at least this many configurations are parsed on several threads.
pub(crate) const PARALLEL_PARSE_FROM: usize = 512;

/// Hands every item to `each` with `sink` (an engine's stored bytes, to decode): on the
/// calling task below [`PARALLEL_PARSE_FROM`] items, else on every core, off the runtime's
/// worker threads (decoding a large namespace costs more than its read). Returns what `each`
/// returned for the items the sink refused, for the engine to word with where they are
/// stored, in no set order. A panic in `each` is raised here.
pub(crate) async fn decode_all<T, P>(items: Vec<T>, sink: Arc<dyn Sink>, each: fn(&dyn Sink, T) -> Option<P>) -> Vec<P>
where
    T: Send + 'static,
    P: Send + 'static,
{
    let small = items.len() < PARALLEL_PARSE_FROM;
    let run = move || {
        let refused = std::sync::Mutex::new(Vec::new());
        let per_thread = if small { usize::MAX } else { 1 };
        map_on_threads(items, per_thread, |_: &mut (), item| {
            if let Some(problem) = each(&*sink, item) {
                refused.lock().unwrap_or_else(|p| p.into_inner()).push(problem);
            }
        });
        refused.into_inner().unwrap_or_else(|p| p.into_inner())
    };
    if small {
        return run();
    }
    joined(tokio::task::spawn_blocking(run)).await
}

/// What a spawned task returned; its panic is resumed here. A task cancelled (the runtime
/// shutting down before it ran) never resolves: its caller is being dropped with the runtime,
/// and a cancellation is not a panic to resume.
pub(crate) async fn joined<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(e) => settle_join_error(e).await,
    }
}

/// A join error: its panic resumed, or (a cancellation) pending for ever.
pub(crate) async fn settle_join_error<T>(error: tokio::task::JoinError) -> T {
    if error.is_panic() {
        std::panic::resume_unwind(error.into_panic());
    }
    std::future::pending().await
}

/// Runs every future at once (each on the runtime, so they overlap on the wire) and returns
/// their outputs in the order given; a lone future is awaited in place (no task spawned for a
/// namespace read in one batch). A panic in one is raised here.
pub(crate) async fn join_ordered<T, F>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    // Taken out of the iterator before anything is awaited (the iterator may borrow).
    let mut futures: Vec<F> = futures.into_iter().collect();
    if futures.len() <= 1 {
        // One batch (a small namespace): awaited here, without a task spawned for it.
        return match futures.pop() {
            Some(only) => vec![only.await],
            None => Vec::new(),
        };
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut count = 0;
    for (index, future) in futures.into_iter().enumerate() {
        tasks.spawn(async move { (index, future.await) });
        count += 1;
    }
    let mut outputs: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, output)) => outputs[index] = Some(output),
            Err(e) => settle_join_error(e).await,
        }
    }
    outputs.into_iter().map(|o| o.expect("every task ran")).collect()
}

/// Connects with `attempt`, all within `timeout`, for the network engines.
///
/// - A refused connection (nothing listens at any of `hosts`) fails at once.
/// - A server that accepts connections but is not serving yet (ZooKeeper while it starts,
///   Redis loading its data: the connection is closed or refused at the protocol level) is
///   tried again every 100 ms until the deadline.
/// - A server that accepts and never answers fails at the deadline, with a message saying so
///   (and that it may be another service, or want or not want TLS).
///
/// Errors other than [`Error::Unavailable`] (a wrong password, a bad spec) are returned at once.
#[cfg(feature = "net")]
pub(crate) async fn connect_within<T, F, Fut>(
    engine: &str,
    describe: &str,
    hosts: &[(String, u16)],
    timeout: std::time::Duration,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e @ Error::Unavailable { .. })) if !is_mismatch(&e) => {
                if !anything_listens(hosts).await {
                    let list: Vec<String> =
                        hosts.iter().map(|(h, p)| format!("{}:{p}", crate::options::shorten(h))).collect();
                    return Err(Error::outage(
                        crate::model::error::Outage::NotReached,
                        describe.to_owned(),
                        format!("nothing listens at {} (connection refused)", list.join(", ")),
                    ));
                }
                last = Some(e);
                if tokio::time::Instant::now() + std::time::Duration::from_millis(100) >= deadline {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok(Err(other)) => return Err(other),
            Err(_) => break,
        }
    }
    let last = match last {
        Some(Error::Unavailable { message, .. }) => format!(" (last: {message})"),
        _ => String::new(),
    };
    let article = if engine.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    Err(Error::unavailable(
        describe.to_owned(),
        format!(
            "no {engine} answer within {} s: the port accepts connections but does not answer as {article} {engine} \
             server (still starting? another service? a TLS port, or not one?){last}",
            timeout.as_secs_f32()
        ),
    ))
}

/// An outage of a server that answered, but not as the engine expects (another protocol, TLS
/// on one side only): trying again cannot help.
#[cfg(feature = "net")]
fn is_mismatch(error: &Error) -> bool {
    matches!(error, Error::Unavailable { outage: crate::model::error::Outage::Mismatch, .. })
}

/// False when every host refuses a TCP connection (nothing listens there).
#[cfg(feature = "net")]
async fn anything_listens(hosts: &[(String, u16)]) -> bool {
    for (host, port) in hosts {
        let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
        match tokio::time::timeout(std::time::Duration::from_millis(500), connect).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            // Connected, or no answer (a filtered port): something may be there.
            Ok(Ok(_)) | Err(_) => return true,
            // A name that does not resolve, an unreachable network: nothing to wait for.
            Ok(Err(_)) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_task_is_not_a_panic_and_a_finished_one_gives_its_value() {
        assert_eq!(joined(tokio::spawn(async { 7 })).await, 7);
        let never = tokio::spawn(std::future::pending::<u8>());
        never.abort();
        // Cancelled (as at runtime shutdown): no panic, and nothing to return.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), joined(never)).await;
        assert!(waited.is_err(), "a cancelled task's caller waits to be dropped");
    }

    #[test]
    fn map_on_threads_starts_a_thread_only_for_a_full_share() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each thread counts what it mapped; the first thread's count is returned.
        let count = |n: usize, per_thread: usize| {
            let (mapped, first) = map_on_threads((0..n).collect(), per_thread, |count: &mut usize, i: usize| {
                *count += 1;
                i + 1
            });
            assert_eq!(mapped, (1..=n).collect::<Vec<_>>(), "in order, n = {n}");
            first
        };
        assert_eq!(count(64, 64), 64, "one share: the caller's thread alone");
        assert_eq!(count(0, 64), 0);
        assert_eq!(count(100, 64), if cores >= 2 { 50 } else { 100 }, "two shares, split evenly");
        assert_eq!(count(10_000, 1), 10_000usize.div_ceil(cores), "every core");
    }

    /// Below the threshold on the calling task, above it on every core: every item reaches the
    /// sink once, and what the sink refused comes back.
    #[tokio::test]
    async fn decode_all_hands_every_item_to_the_sink_and_returns_the_refusals() {
        use crate::model::decode::{Maps, Refused};
        use crate::model::version::Version;
        fn each(sink: &dyn Sink, i: usize) -> Option<Refused> {
            let bytes = if i % 100 == 7 { "[]".to_owned() } else { format!(r#"{{"i": {i}}}"#) };
            sink.entry(format!("c{i}"), bytes.as_bytes(), Version::number(i as i64)).err()
        }
        for n in [0, 3, PARALLEL_PARSE_FROM - 1, PARALLEL_PARSE_FROM, 3 * PARALLEL_PARSE_FROM + 7] {
            let maps = Maps::new();
            let mut refused: Vec<String> =
                decode_all((0..n).collect(), maps.clone(), each).await.into_iter().map(|r| r.name).collect();
            refused.sort_unstable();
            let mut expected: Vec<String> = (0..n).filter(|i| i % 100 == 7).map(|i| format!("c{i}")).collect();
            expected.sort_unstable();
            assert_eq!(refused, expected, "n = {n}");
            let data = maps.take();
            assert_eq!(data.len(), n - expected.len(), "n = {n}");
            assert!((0..n)
                .filter(|i| i % 100 != 7)
                .all(|i| data[&format!("c{i}")].version == Version::number(i as i64)));
        }
    }

    #[test]
    fn chunks_are_bounded_in_operations_and_bytes_and_never_empty() {
        assert!(chunk_ranges(0, 3, 10, |_| 1).is_empty());
        assert_eq!(chunk_ranges(7, 3, 100, |_| 1), [0..3, 3..6, 6..7]);
        assert_eq!(chunk_ranges(4, 10, 10, |_| 4), [0..2, 2..4]);
        // An item over the byte limit goes alone, and the next starts afresh.
        let sizes = [1, 50, 1, 1];
        assert_eq!(chunk_ranges(4, 10, 10, |i| sizes[i]), [0..1, 1..2, 2..4]);
    }

    #[test]
    fn packs_are_bounded_in_operations_and_bytes_and_keep_the_order() {
        let items = [(2, 10), (2, 10), (3, 10), (1, 100), (1, 1)];
        let groups = pack(items.to_vec(), 4, 50, |&(o, b)| (o, b));
        assert_eq!(groups, vec![vec![(2, 10), (2, 10)], vec![(3, 10)], vec![(1, 100)], vec![(1, 1)]]);
        assert!(pack(Vec::<(usize, usize)>::new(), 4, 50, |&(o, b)| (o, b)).is_empty());
    }

    #[tokio::test]
    async fn joins_keep_the_order_given_whatever_finishes_first() {
        let futures = (0..5u64).map(|i| async move {
            tokio::time::sleep(std::time::Duration::from_millis(50 - i * 10)).await;
            i
        });
        assert_eq!(join_ordered(futures).await, [0, 1, 2, 3, 4]);
        assert_eq!(join_ordered([async { 7 }]).await, [7]);
        assert!(join_ordered(Vec::<std::future::Ready<u8>>::new()).await.is_empty());
    }
}
