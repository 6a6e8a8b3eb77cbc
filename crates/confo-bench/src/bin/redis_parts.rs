//! Where a Redis persist's time goes, part by part: N configurations of about 280 bytes
//! rewritten in one namespace, medians of 5 runs, on a private server the testkit starts.
//!
//! The rows build up from the raw floor to confo's write, each adding one part of what confo's
//! write script does, with the raw client and no confo code (the scripts are chunked as confo
//! chunks a batch: at most 5,000 changes and 1 MB of values per call):
//!
//! 1. raw pipelined `SET`s of the encoded values (the benchmark's baseline);
//! 2. the same `SET`s from a script, one call per chunk;
//! 3. + the layout check of each key (`TYPE`: another program's hash is not overwritten);
//! 4. + one `confo:events` message per change (`PUBLISH`, no subscriber);
//! 5. + the namespace's index read, decoded and written back once per chunk;
//! 6. confo's `write`, history off; 7. confo's `write`, history on;
//!
//! and, with no server, the client's encoding of the values (`serde_json::to_vec`) and their
//! SHA-1 version tokens. For rows 6 and 7 the server's own accounting (`INFO commandstats`:
//! calls and microseconds per command, the script's inner commands included) is printed too.
//!
//! ```text
//! cargo run --release -p confo-bench --bin redis_parts [-- N]     (default 10000)
//! ```

use std::time::{Duration, Instant};

use confo::backend::redis::{RedisBackend, RedisOptions};
use confo::{BackendExt, Change, Configuration};
use confo_bench::workload::configuration as config;

const RUNS: usize = 5;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Index ranges of at most 5,000 values and 1 MB, as confo chunks a batch.
fn chunks(values: &[Vec<u8>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, v) in values.iter().enumerate() {
        if i > start && (i - start == 5000 || bytes + v.len() > 1 << 20) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += v.len();
    }
    out.push(start..values.len());
    out
}

/// The server's per-command accounting since the last `CONFIG RESETSTAT`: (command, calls, µs).
async fn command_stats(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, u64, u64)> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.expect("INFO");
    let mut rows: Vec<(String, u64, u64)> = info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field =
                |key: &str| rest.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok());
            Some((name.to_owned(), field("calls")?, field("usec")?))
        })
        .filter(|(name, _, _)| !matches!(name.as_str(), "info" | "config"))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    rows
}

/// Zeroes the server's per-command accounting.
async fn reset(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(conn).await.expect("RESETSTAT");
}

/// The server's time per run in `commands` since the last reset (the first, untimed run of
/// rows 1-5 included: it is one of `RUNS + 1`).
async fn server_time(conn: &mut redis::aio::MultiplexedConnection, commands: &[&str]) -> Duration {
    let usec: u64 = command_stats(conn).await.iter().filter(|r| commands.contains(&r.0.as_str())).map(|r| r.2).sum();
    Duration::from_micros(usec / (RUNS as u64 + 1))
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(10_000, |a| a.parse().expect("N"));
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let names: Vec<String> = (0..n).map(|i| format!("config-{i:05}")).collect();
    let configs: Vec<Configuration> = (0..n).map(config).collect();
    let values: Vec<Vec<u8>> = configs.iter().map(|c| serde_json::to_vec(c).expect("json")).collect();
    let ranges = chunks(&values);
    let index = serde_json::to_vec(&serde_json::json!({ "configurations": names })).expect("index");
    let _: () = redis::cmd("SET").arg("raw").arg(&index).query_async(&mut conn).await.expect("SET");

    println!("Redis persist of {n} configurations ({} bytes of values), part by part, medians of {RUNS} runs", {
        values.iter().map(Vec::len).sum::<usize>()
    });
    println!();
    println!("| part | time | added by this part | of which in the server |");
    println!("| --- | --- | --- | --- |");
    let mut previous: Option<Duration> = None;
    let mut row = |part: &str, time: Duration, server: Duration| {
        let added = previous.map_or_else(|| "—".to_owned(), |p| ms(time.saturating_sub(p)));
        println!("| {part} | {} | {added} | {} |", ms(time), ms(server));
        previous = Some(time);
    };

    // 1. Raw pipelined SETs.
    reset(&mut conn).await;
    let mut times = Vec::new();
    for _ in 0..=RUNS {
        let started = Instant::now();
        let mut pipe = redis::pipe();
        for (name, value) in names.iter().zip(&values) {
            pipe.cmd("SET").arg(format!("raw-{name}")).arg(value.as_slice()).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.expect("pipeline");
        times.push(started.elapsed());
    }
    times.remove(0);
    row("1. raw pipelined SET", median(times), server_time(&mut conn, &["set"]).await);

    // 2-5. The same from scripts, adding one part each.
    let set = "redis.call('SET', 'raw-' .. ARGV[i], ARGV[i + 1])";
    let check = "local t = redis.call('TYPE', 'raw-' .. ARGV[i]).ok if t ~= 'none' and t ~= 'string' then return 0 end";
    let publish = "redis.call('PUBLISH', 'confo:events', '{\"namespace\":' .. cjson.encode('raw') .. \
                   ',\"configuration\":' .. cjson.encode(ARGV[i]) .. ',\"operation\":\"put\"}')";
    let index_read = "local doc = cjson.decode(redis.call('GET', 'raw')) local listed = {} \
                      for _, c in ipairs(doc.configurations) do listed[c] = true end";
    let index_write = "local parts = {} for j, c in ipairs(doc.configurations) do parts[j] = cjson.encode(c) end \
                       redis.call('SET', 'raw', '{\"configurations\":[' .. table.concat(parts, ',') .. ']}')";
    let bodies = [
        ("2. the SETs from a script per chunk", format!("for i = 1, #ARGV, 2 do {set} end return 1")),
        ("3. + TYPE of each key", format!("for i = 1, #ARGV, 2 do {check} {set} end return 1")),
        ("4. + PUBLISH per change", format!("for i = 1, #ARGV, 2 do {check} {set} {publish} end return 1")),
        (
            "5. + the index decoded and written per chunk",
            format!("{index_read} for i = 1, #ARGV, 2 do {check} {set} {publish} end {index_write} return 1"),
        ),
    ];
    for (part, body) in &bodies {
        let script = redis::Script::new(body);
        let mut times = Vec::new();
        reset(&mut conn).await;
        for _ in 0..=RUNS {
            let started = Instant::now();
            for range in &ranges {
                let mut call = script.prepare_invoke();
                for i in range.clone() {
                    call.arg(names[i].as_str()).arg(values[i].as_slice());
                }
                let _: i64 = call.invoke_async(&mut conn).await.expect("script");
            }
            times.push(started.elapsed());
        }
        times.remove(0);
        row(part, median(times), server_time(&mut conn, &["evalsha", "eval"]).await);
    }

    // 6-7. confo's write, history off and on.
    let changes: Vec<Change> = names.iter().zip(&configs).map(|(k, v)| Change::put(k.clone(), v.clone())).collect();
    let mut stats = Vec::new();
    for (part, query) in [("6. confo's write, history off", "?history=off"), ("7. confo's write, history on", "")] {
        let backend = RedisBackend::connect(RedisOptions::from_url(&format!("{}{query}", server.url())).expect("url"))
            .await
            .expect("connect");
        let namespace = format!("ns{}", part.as_bytes()[0]);
        backend.create_namespace(&namespace).await.expect("create");
        backend.write(&namespace, &changes).await.into_result().expect("write");
        reset(&mut conn).await;
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            backend.write(&namespace, &changes).await.into_result().expect("write");
            times.push(started.elapsed());
        }
        let accounted = command_stats(&mut conn).await;
        let server: u64 = accounted.iter().filter(|r| r.0 == "evalsha").map(|r| r.2).sum();
        stats.push((part, accounted));
        row(part, median(times), Duration::from_micros(server / RUNS as u64));
    }
    println!();

    // Reload, part by part (the namespace confo wrote above, history off).
    println!("Redis reload of the same {n} configurations, part by part, medians of {RUNS} runs");
    println!();
    println!("| part | time | added by this part | of which in the server |");
    println!("| --- | --- | --- | --- |");
    previous = None;
    let mut row = |part: &str, time: Duration, server: Duration| {
        let added = previous.map_or_else(|| "—".to_owned(), |p| ms(time.saturating_sub(p)));
        println!("| {part} | {} | {added} | {} |", ms(time), ms(server));
        previous = Some(time);
    };
    let keys: Vec<String> = names.iter().map(|k| format!("raw-{k}")).collect();
    let parse = |values: Vec<Option<Vec<u8>>>, hash: bool| {
        for value in values.into_iter().flatten() {
            let map: Configuration = serde_json::from_slice(&value).expect("parse");
            std::hint::black_box(map);
            if hash {
                std::hint::black_box(sha1_smol::Sha1::from(&value).digest().to_string());
            }
        }
    };
    for (part, parsed, hashed) in [("1. raw MGET", false, false), ("2. + parse each value (one thread)", true, false)] {
        reset(&mut conn).await;
        let mut times = Vec::new();
        for _ in 0..=RUNS {
            let started = Instant::now();
            let values: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.expect("MGET");
            if parsed {
                parse(values, hashed);
            }
            times.push(started.elapsed());
        }
        times.remove(0);
        row(part, median(times), server_time(&mut conn, &["mget"]).await);
    }
    // What confo's read script does: the root and namespace indexes decoded, the values read by
    // MGETs of 1,000 keys, returned as name, value pairs.
    let read = redis::Script::new(
        "local doc = cjson.decode(redis.call('GET', 'raw')) local keys = {} \
         for i, c in ipairs(doc.configurations) do keys[i] = 'raw-' .. c end local reply = {} \
         for first = 1, #keys, 1000 do local last = math.min(first + 999, #keys) \
         local values = redis.call('MGET', unpack(keys, first, last)) \
         for i = first, last do reply[#reply + 1] = doc.configurations[i] reply[#reply + 1] = values[i - first + 1] end end \
         return reply",
    );
    for (part, parsed, hashed) in [
        ("3. a script: the index decoded, MGETs of 1,000, name-value pairs", false, false),
        ("4. + parse each value (one thread)", true, false),
        ("5. + its SHA-1 version token", true, true),
    ] {
        reset(&mut conn).await;
        let mut times = Vec::new();
        for _ in 0..=RUNS {
            let started = Instant::now();
            let flat: Vec<Option<Vec<u8>>> = read.prepare_invoke().invoke_async(&mut conn).await.expect("script");
            if parsed {
                parse(flat.into_iter().skip(1).step_by(2).collect(), hashed);
            }
            times.push(started.elapsed());
        }
        times.remove(0);
        row(part, median(times), server_time(&mut conn, &["evalsha", "eval"]).await);
    }
    {
        let backend =
            RedisBackend::connect(RedisOptions::from_url(&format!("{}?history=off", server.url())).expect("url"))
                .await
                .expect("connect");
        reset(&mut conn).await;
        let mut times = Vec::new();
        for _ in 0..=RUNS {
            let started = Instant::now();
            std::hint::black_box(backend.load_namespace("ns54").await.expect("load"));
            times.push(started.elapsed());
        }
        times.remove(0);
        row(
            "6. confo's load_namespace (parsing on 2 threads)",
            median(times),
            server_time(&mut conn, &["evalsha"]).await,
        );
    }
    println!();

    // The client's own work: encoding and version tokens.
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for c in &configs {
            let bytes = serde_json::to_vec(c).expect("json");
            std::hint::black_box(sha1_smol::Sha1::from(&bytes).digest().to_string());
        }
        times.push(started.elapsed());
    }
    println!("Client side, no server: encoding the {n} values and their SHA-1 tokens: {}", ms(median(times)));
    for (part, rows) in stats {
        println!();
        println!("Server accounting during {RUNS} runs of {part} (INFO commandstats, per run):");
        println!();
        println!("| command | calls | time | per call |");
        println!("| --- | --- | --- | --- |");
        for (name, calls, usec) in rows.iter().take(10) {
            let per_run = *usec as f64 / RUNS as f64;
            println!(
                "| {name} | {} | {:.1} ms | {:.2} µs |",
                calls / RUNS as u64,
                per_run / 1e3,
                *usec as f64 / (*calls).max(1) as f64
            );
        }
    }
}
