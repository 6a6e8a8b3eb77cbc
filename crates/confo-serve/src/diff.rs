//! Differences for people: field by field (JSON pointers) for the API, and line by line, side
//! by side (old on the left), for the console.

use serde_json::Value;

/// One field that differs: its JSON pointer, the old value (`None`: added), the new (`None`:
/// removed).
pub type FieldChange = (String, Option<Value>, Option<Value>);

/// Every field that differs between two values, nested objects walked field by field.
pub fn fields(old: Option<&Value>, new: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(pointer: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (key, value) in a {
                walk(&child(pointer, key), Some(value), b.get(key), out);
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk(&child(pointer, key), None, Some(value), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((pointer.to_owned(), a.cloned(), b.cloned())),
    }
}

fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// One row of a side-by-side diff.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// The same line on both sides.
    Same(String),
    /// Only on the left (removed).
    Old(String),
    /// Only on the right (added).
    New(String),
    /// Changed: left, then right.
    Changed(String, String),
}

/// A line diff of two texts (longest common subsequence; past 4,000 lines a side, every line
/// that differs at the same place is shown as changed).
pub fn lines(old: &str, new: &str) -> Vec<Row> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    if a.len() > 4000 || b.len() > 4000 {
        let mut rows = Vec::new();
        for i in 0..a.len().max(b.len()) {
            rows.push(match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) if x == y => Row::Same((*x).to_owned()),
                (Some(x), Some(y)) => Row::Changed((*x).to_owned(), (*y).to_owned()),
                (Some(x), None) => Row::Old((*x).to_owned()),
                (None, Some(y)) => Row::New((*y).to_owned()),
                (None, None) => continue,
            });
        }
        return rows;
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut rows: Vec<Row> = Vec::new();
    // A run of removed lines and the added lines after it, paired up as changed lines.
    let (mut removed, mut added): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let flush = |rows: &mut Vec<Row>, removed: &mut Vec<&str>, added: &mut Vec<&str>| {
        let pairs = removed.len().min(added.len());
        for k in 0..pairs {
            rows.push(Row::Changed(removed[k].to_owned(), added[k].to_owned()));
        }
        rows.extend(removed[pairs..].iter().map(|l| Row::Old((*l).to_owned())));
        rows.extend(added[pairs..].iter().map(|l| Row::New((*l).to_owned())));
        removed.clear();
        added.clear();
    };
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            flush(&mut rows, &mut removed, &mut added);
            rows.push(Row::Same(a[i].to_owned()));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            removed.push(a[i]);
            i += 1;
        } else {
            added.push(b[j]);
            j += 1;
        }
    }
    flush(&mut rows, &mut removed, &mut added);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_name_nested_changes_by_pointer() {
        let old = json!({"a": 1, "db": {"host": "x", "port": 1}, "gone": true});
        let new = json!({"a": 1, "db": {"host": "y", "port": 1}, "new/field": 2});
        let changes = fields(Some(&old), Some(&new));
        assert_eq!(
            changes,
            vec![
                ("/db/host".to_owned(), Some(json!("x")), Some(json!("y"))),
                ("/gone".to_owned(), Some(json!(true)), None),
                ("/new~1field".to_owned(), None, Some(json!(2))),
            ]
        );
        assert!(fields(Some(&old), Some(&old)).is_empty());
    }

    #[test]
    fn lines_keep_old_on_the_left_and_pair_changes() {
        let rows = lines("a\nb\nc", "a\nB\nc\nd");
        assert_eq!(
            rows,
            vec![
                Row::Same("a".into()),
                Row::Changed("b".into(), "B".into()),
                Row::Same("c".into()),
                Row::New("d".into())
            ]
        );
        assert_eq!(lines("x\ny", "y"), vec![Row::Old("x".into()), Row::Same("y".into())]);
    }
}
