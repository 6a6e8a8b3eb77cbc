//! Version history: every change to a configuration is recorded, by the backend's own write
//! path and in the same atomic step as the data, as a numbered [`Revision`] (1, 2, 3, … per
//! configuration) holding the value after the change, the operation, who made it and when.
//!
//! The record's layout is shared by every engine (one JSON object per revision, see
//! `Record::encode`); where it is kept is each engine's own, always outside the layouts old
//! readers know (Redis streams `confo-history:{<ns>-<cfg>}`, znodes and keys under
//! `/confo-history/`, and a sibling folder `.<root>.confo/` of a file store's root).
//!
//! [`HistoryOptions`] (per backend spec or profile) switch it off or set its retention.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::model::error::{Error, Result};
use crate::model::version::Configuration;

/// What a revision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The configuration was created.
    Create,
    /// It was changed.
    Change,
    /// It was deleted (the revision has no value).
    Delete,
    /// An earlier revision's value was written again ([`Revision::restores`] names it).
    Rollback,
    /// It was found changed (or deleted) by a program that keeps no history (an editor, a
    /// raw client, Python confo), and recorded before the next change.
    External,
}

impl Operation {
    /// `create`, `change`, `delete`, `rollback` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Change => "change",
            Operation::Delete => "delete",
            Operation::Rollback => "rollback",
            Operation::External => "external",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "create" => Operation::Create,
            "change" => Operation::Change,
            "delete" => Operation::Delete,
            "rollback" => Operation::Rollback,
            "external" => Operation::External,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who makes a change, recorded with it: an actor name, the host, the tool, and an optional
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The actor: `CONFO_ACTOR`, else a profile's `actor`, else `user@host`.
    pub actor: String,
    /// The host the change was made from.
    pub host: String,
    /// The tool: `cli`, `library`, `python`, `server`.
    pub tool: String,
    /// Why (the CLI's `--message`).
    pub message: Option<String>,
}

impl Author {
    /// This process's author for `tool`: the actor from `CONFO_ACTOR`, else `user@host`.
    pub fn current(tool: &str) -> Self {
        let host = hostname();
        let actor = std::env::var("CONFO_ACTOR")
            .ok()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| format!("{}@{host}", username()));
        Author { actor, host, tool: tool.to_owned(), message: None }
    }

    /// The same author under another actor name.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// The same author with a message for the next changes.
    pub fn with_message(mut self, message: Option<String>) -> Self {
        self.message = message;
        self
    }

    /// The library's default author (`tool` = `library`), read once per process.
    pub fn library() -> Arc<Author> {
        static LIBRARY: std::sync::OnceLock<Arc<Author>> = std::sync::OnceLock::new();
        LIBRARY.get_or_init(|| Arc::new(Author::current("library"))).clone()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn username() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One recorded change of a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Its number: 1 for the configuration's first recorded change, then 2, 3, … without gaps
    /// or repeats (retention drops the oldest; numbers are never reused).
    pub number: u64,
    /// What it did.
    pub operation: Operation,
    /// The configuration's value after the change; `None` for a deletion.
    pub value: Option<Arc<Configuration>>,
    /// The store's version token before the change (`None`: it did not exist or is unknown).
    pub version_before: Option<String>,
    /// The version token after the change (`None` for a deletion).
    pub version_after: Option<String>,
    /// When (to the millisecond, by the writer's clock).
    pub time: SystemTime,
    /// Who.
    pub actor: String,
    /// From which host.
    pub host: String,
    /// With which tool.
    pub tool: String,
    /// Why, if the writer said.
    pub message: Option<String>,
    /// For a rollback, the revision whose value it restored.
    pub restores: Option<u64>,
}

/// A configuration's history as read: revisions newest first, and the records that could not
/// be read (each named; they do not hide the others).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The readable revisions, newest first.
    pub revisions: Vec<Revision>,
    /// Records that are not readable revisions.
    pub corrupt: Vec<crate::model::error::Corruption>,
}

impl History {
    /// Orders the revisions newest first.
    pub(crate) fn sorted(mut self) -> Self {
        self.revisions.sort_by_key(|r| std::cmp::Reverse(r.number));
        self
    }

    /// The highest number recorded, readable or not (`0` when there is none).
    pub fn head(&self) -> u64 {
        self.revisions.first().map_or(0, |r| r.number)
    }
}

/// Whether a backend records history, and how much it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryOptions {
    /// Record history (default `true`; spec option `history=off` turns it off).
    pub enabled: bool,
    /// Keep at least the newest this many revisions per configuration (default 100; option
    /// `history_keep=N`, at least 1).
    pub keep: usize,
    /// Keep revisions younger than this too, however many (option `history_max_age=30d`; by
    /// default no age limit: revisions beyond `keep` are dropped). A revision is dropped only
    /// when it is beyond both limits; the newest is always kept.
    pub max_age: Option<Duration>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { enabled: true, keep: 100, max_age: None }
    }
}

impl HistoryOptions {
    /// History switched off.
    pub fn off() -> Self {
        HistoryOptions { enabled: false, ..Default::default() }
    }

    /// The same options keeping at least the newest `keep` revisions (at least 1).
    pub fn keeping(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// The same options keeping revisions younger than `age` too.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The query options that differ from the defaults, for a spec's `Display`
    /// (`history=off&history_keep=20`).
    pub(crate) fn query(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if !self.enabled {
            parts.push("history=off".to_owned());
        }
        if self.keep != HistoryOptions::default().keep {
            parts.push(format!("history_keep={}", self.keep));
        }
        if let Some(age) = self.max_age {
            parts.push(format!("history_max_age={}s", age.as_secs()));
        }
        parts
    }

    /// Of revisions `(number, time)` in any order, the numbers retention drops now: those
    /// beyond the newest `keep` that are also older than `max_age` (all beyond `keep` when
    /// there is no age limit). The newest is never dropped.
    pub fn to_drop(&self, revisions: &[(u64, SystemTime)], now: SystemTime) -> Vec<u64> {
        let mut sorted: Vec<(u64, SystemTime)> = revisions.to_vec();
        sorted.sort_by_key(|r| std::cmp::Reverse(r.0));
        sorted
            .into_iter()
            .skip(self.keep.max(1))
            .filter(|(_, time)| match self.max_age {
                None => true,
                Some(age) => now.duration_since(*time).is_ok_and(|d| d > age),
            })
            .map(|(n, _)| n)
            .collect()
    }

    /// Whether revisions beyond `keep` must be looked at one by one (an age limit is set).
    pub(crate) fn by_age(&self) -> bool {
        self.max_age.is_some()
    }
}

/// `90d`, `12h`, `30m`, `45s`, `2w`, or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

/// What a backend records for one change, before it knows its number and operation (an
/// engine fills those in; a Redis script appends them).
#[derive(Debug, Clone)]
pub(crate) struct Record<'a> {
    pub number: u64,
    pub operation: Operation,
    pub time: SystemTime,
    pub author: &'a Author,
    pub restores: Option<u64>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub value: Option<&'a Configuration>,
}

/// Who an `external` revision is recorded as made by: a change found made without confo (the
/// Redis write script writes the same fields).
static OUTSIDE: std::sync::LazyLock<Author> = std::sync::LazyLock::new(|| Author {
    actor: "(outside confo)".into(),
    host: String::new(),
    tool: "external".into(),
    message: None,
});

/// The operation a change records: a put is a rollback when it restores a revision, else a
/// change of what existed or a creation; a delete is a deletion.
pub(crate) fn operation_of(change: &crate::model::change::Change, existed: bool) -> Operation {
    match (&change.kind, change.restores, existed) {
        (crate::model::change::ChangeKind::Delete, _, _) => Operation::Delete,
        (_, Some(_), _) => Operation::Rollback,
        (_, None, true) => Operation::Change,
        (_, None, false) => Operation::Create,
    }
}

impl<'a> Record<'a> {
    /// The `external` revision of a change found made without confo: from version `before`
    /// (the last recorded) to `after` (what is stored), holding `value` (none if unreadable).
    pub(crate) fn external(
        number: u64,
        time: SystemTime,
        before: Option<String>,
        after: Option<String>,
        value: Option<&'a Configuration>,
    ) -> Self {
        Record { number, operation: Operation::External, time, author: &OUTSIDE, restores: None, before, after, value }
    }
}

impl Record<'_> {
    /// The record as stored by the file, ZooKeeper and etcd engines: one compact JSON object.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut map = self.meta();
        map.insert("restores".into(), self.restores.map_or(Value::Null, Value::from));
        map.insert("n".into(), Value::from(self.number));
        map.insert("op".into(), Value::from(self.operation.as_str()));
        map.insert("before".into(), self.before.clone().map_or(Value::Null, Value::String));
        map.insert("after".into(), self.after.clone().map_or(Value::Null, Value::String));
        let mut bytes = serde_json::to_vec(&Value::Object(map))
            .map_err(|e| Error::InvalidValue { location: "history record".into(), message: e.to_string() })?;
        // The value is spliced in, not cloned into the map.
        bytes.pop();
        bytes.extend_from_slice(b",\"value\":");
        match self.value {
            Some(value) => serde_json::to_writer(&mut bytes, value)
                .map_err(|e| Error::InvalidValue { location: "history record".into(), message: e.to_string() })?,
            None => bytes.extend_from_slice(b"null"),
        }
        bytes.push(b'}');
        Ok(bytes)
    }

    pub(crate) fn meta(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("time".into(), Value::from(format_time(self.time)));
        map.insert("actor".into(), Value::from(self.author.actor.clone()));
        map.insert("host".into(), Value::from(self.author.host.clone()));
        map.insert("tool".into(), Value::from(self.author.tool.clone()));
        map.insert("message".into(), self.author.message.clone().map_or(Value::Null, Value::String));
        map
    }
}

/// What [`crate::backend::Backend::rewrite_history`] is given: a change to a revision's value, and
/// whether it made one.
pub type Rewrite = dyn for<'c> Fn(&'c mut Configuration) -> bool + Send + Sync;

/// A stored record (the JSON object every engine keeps) with its value changed by `rewrite`,
/// ready to be written back; `None` when it is not a readable record, or `rewrite` changed
/// nothing.
pub(crate) fn rewritten_record(bytes: &[u8], rewrite: &Rewrite) -> Option<Map<String, Value>> {
    let Ok(Value::Object(mut record)) = crate::model::json::from_slice_nested::<Value>(bytes, 1) else { return None };
    let changed = match record.get_mut("value") {
        Some(Value::Object(value)) => rewrite(value),
        _ => false,
    };
    changed.then_some(record)
}

/// A stored record read back. `number` is the number the engine keeps it under (a Redis
/// stream id, a file or key name), used when the record does not say; `location` names it in
/// the corruption a bad record becomes.
pub(crate) fn decode_record(
    bytes: &[u8],
    number: Option<u64>,
    location: impl Fn() -> String,
) -> std::result::Result<Revision, crate::model::error::Corruption> {
    // A record wraps the value in one level of its own: a value as deep as a write accepts
    // reads back.
    match crate::model::json::from_slice_nested::<Value>(bytes, 1) {
        Ok(Value::Object(map)) => record_from_map(map, number, location),
        Ok(other) => Err(crate::model::error::Corruption {
            location: location(),
            problem: format!(
                "not a history record: top level is {}, not a JSON object",
                crate::model::codec::json_kind(&other)
            ),
        }),
        Err(problem) => Err(crate::model::error::Corruption {
            location: location(),
            problem: format!("not a history record: {problem}"),
        }),
    }
}

/// [`decode_record`] of a record already parsed (one kept inside another document).
pub(crate) fn record_from_map(
    mut map: Map<String, Value>,
    number: Option<u64>,
    location: impl Fn() -> String,
) -> std::result::Result<Revision, crate::model::error::Corruption> {
    let bad = |problem: String| crate::model::error::Corruption { location: location(), problem };
    let text = |map: &Map<String, Value>, key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = map.get("n").and_then(Value::as_u64).or(number).ok_or_else(|| bad("no revision number".into()))?;
    let operation =
        text(&map, "op").and_then(|op| Operation::parse(&op)).ok_or_else(|| bad("no known operation (op)".into()))?;
    let time = text(&map, "time").and_then(|t| parse_time(&t)).ok_or_else(|| bad("no readable time".into()))?;
    let value = match map.remove("value") {
        Some(Value::Object(v)) => Some(Arc::new(v)),
        None | Some(Value::Null) => None,
        Some(_) => return Err(bad("its value is not a JSON object".into())),
    };
    Ok(Revision {
        number,
        operation,
        value,
        version_before: text(&map, "before"),
        version_after: text(&map, "after"),
        time,
        actor: text(&map, "actor").unwrap_or_default(),
        host: text(&map, "host").unwrap_or_default(),
        tool: text(&map, "tool").unwrap_or_default(),
        message: text(&map, "message"),
        restores: map.get("restores").and_then(Value::as_u64),
    })
}

/// `2026-11-28T05:01:02.345Z`.
pub fn format_time(time: SystemTime) -> String {
    let ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Reads `2026-11-28T05:01:02.345Z`, `2026-11-28T05:01:02Z`, `2026-11-28 05:01` or
/// `2026-11-28` (UTC).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim().trim_end_matches('Z');
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((d, c)) => (d, c),
        None => (text, "00:00:00"),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let min: i64 = hms.next().unwrap_or("0").parse().ok()?;
    let s: i64 = hms.next().unwrap_or("0").parse().ok()?;
    if h > 23 || min > 59 || s > 60 {
        return None;
    }
    let milli: i64 = match frac {
        "" => 0,
        f => format!("{:0<3}", &f[..f.len().min(3)]).parse().ok()?,
    };
    let ms = ((days_from_civil(y, m, d) * 24 + h) * 60 + min) * 60_000 + s * 1000 + milli;
    u64::try_from(ms).ok().map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

// Howard Hinnant's civil-calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The current time, to the millisecond (what records hold).
pub(crate) fn now() -> SystemTime {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The revision of a configuration's history numbered `number`.
pub(crate) fn find(history: &History, number: u64) -> Option<&Revision> {
    history.revisions.iter().find(|r| r.number == number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_millisecond() {
        for ms in [0u64, 1_764_306_062_345, 951_782_400_000 /* 2000-02-29 */, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_time(&format_time(t)), Some(t), "{}", format_time(t));
        }
        assert_eq!(format_time(UNIX_EPOCH + Duration::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_time("2026-11-28"), parse_time("2026-11-28T00:00:00.000Z"));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn retention_drops_only_what_is_beyond_both_limits() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let old = now - Duration::from_secs(100 * 86_400);
        let young = now - Duration::from_secs(60);
        let revisions: Vec<(u64, SystemTime)> = vec![(1, old), (2, old), (3, young), (4, young), (5, young)];
        let count = HistoryOptions { keep: 2, ..Default::default() };
        assert_eq!(count.to_drop(&revisions, now), vec![3, 2, 1]);
        let both = HistoryOptions { keep: 2, max_age: Some(Duration::from_secs(86_400)), ..Default::default() };
        assert_eq!(both.to_drop(&revisions, now), vec![2, 1]);
        // The newest is kept even with keep = 0 and everything old.
        let all_old: Vec<(u64, SystemTime)> = vec![(7, old)];
        let zero = HistoryOptions { keep: 0, max_age: Some(Duration::from_secs(1)), ..Default::default() };
        assert!(zero.to_drop(&all_old, now).is_empty());
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_named() {
        let author = Author { actor: "alice".into(), host: "h".into(), tool: "cli".into(), message: Some("m".into()) };
        let mut value = Configuration::new();
        value.insert("port".into(), Value::from(5432));
        let record = Record {
            number: 3,
            operation: Operation::Rollback,
            time: now(),
            author: &author,
            restores: Some(1),
            before: Some("a".into()),
            after: Some("b".into()),
            value: Some(&value),
        };
        let read = decode_record(&record.encode().unwrap(), None, || "here".into()).unwrap();
        assert_eq!((read.number, read.operation, read.restores), (3, Operation::Rollback, Some(1)));
        assert_eq!((read.actor.as_str(), read.message.as_deref()), ("alice", Some("m")));
        assert_eq!(read.value.as_deref(), Some(&value));
        assert_eq!(read.time, record.time);
        let bad = decode_record(b"{\"n\":1}", None, || "file h/1".into()).unwrap_err();
        assert_eq!(bad.location, "file h/1");
        assert!(bad.problem.contains("op"), "{}", bad.problem);
        assert!(decode_record(b"not json", Some(2), || "x".into()).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("3 parsecs"), None);
    }
}
