//! JSON values to Python objects and back, directly (no JSON text in between), with every
//! number exact: an integer of any size is an `int` (`-0` a `Decimal`, to keep its sign); a
//! number with a fraction or an exponent is a `float` when the float is exactly that number,
//! else a `decimal.Decimal` (the same rule as `confo/_json.py`, which reads JSON text).

use confo::model::compact::{Compact, View};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde_json::{Map, Number, Value};

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn decimal<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    DECIMAL.import(py, "decimal", "Decimal")?.call1((text,))
}

/// A configuration as a `dict`.
pub(crate) fn configuration<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in map {
        dict.set_item(PyString::new(py, key), to_py(py, value)?)?;
    }
    Ok(dict)
}

/// Field names already made into Python strings during one conversion of many configurations
/// (they tend to share their field names): one string object per name, its hash computed once.
pub(crate) struct Keys<'py> {
    made: std::collections::HashMap<String, Bound<'py, PyString>, std::hash::BuildHasherDefault<Fnv>>,
    /// How many names to keep (0 for one configuration: nothing to share).
    limit: usize,
}

impl Default for Keys<'_> {
    fn default() -> Self {
        Keys { made: Default::default(), limit: 4096 }
    }
}

/// FNV-1a: field names are short, and SipHash's setup cost dominated their lookups (a map
/// private to one call, so no one can choose keys against it).
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

impl<'py> Keys<'py> {
    /// For one configuration: names are not kept.
    pub(crate) fn single() -> Self {
        Keys { made: Default::default(), limit: 0 }
    }

    fn get(&mut self, py: Python<'py>, key: &str) -> Bound<'py, PyString> {
        if let Some(made) = self.made.get(key) {
            return made.clone();
        }
        let made = PyString::new(py, key);
        // Bounded: a namespace whose configurations all have different fields keeps no more.
        if self.made.len() < self.limit {
            self.made.insert(key.to_owned(), made.clone());
        }
        made
    }

    /// A configuration as a `dict`, sharing field-name strings with the others converted.
    pub(crate) fn configuration(&mut self, py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in map {
            dict.set_item(self.get(py, key), to_py(py, value)?)?;
        }
        Ok(dict)
    }

    /// A cached configuration as a `dict`, read in place (no `serde_json` value is built).
    pub(crate) fn compact(&mut self, py: Python<'py>, compact: &Compact) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in compact.fields() {
            dict.set_item(self.get(py, key), self.view(py, value)?)?;
        }
        Ok(dict)
    }

    fn view(&mut self, py: Python<'py>, value: View<'_>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match value {
            View::Null => py.None().into_bound(py),
            View::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            View::Number(text) => number_text(py, text)?,
            View::String(s) => PyString::new(py, s).into_any(),
            View::Array(items) => {
                let list = PyList::empty(py);
                for item in items {
                    list.append(self.view(py, item.view())?)?;
                }
                list.into_any()
            }
            View::Object(fields) => {
                let dict = PyDict::new(py);
                for (key, item) in fields {
                    dict.set_item(self.get(py, key), self.view(py, item.view())?)?;
                }
                dict.into_any()
            }
        })
    }
}

/// A JSON value as a Python object.
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => number(py, n)?,
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => configuration(py, map)?.into_any(),
    })
}

fn number<'py>(py: Python<'py>, n: &Number) -> PyResult<Bound<'py, PyAny>> {
    number_text(py, n.as_str())
}

/// A number from its exact JSON text.
fn number_text<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    if let Some(i) = text.parse::<i64>().ok().filter(|&i| i != 0 || !text.starts_with('-')) {
        return Ok(i.into_pyobject(py)?.into_any());
    }
    if !text.contains(['.', 'e', 'E']) {
        if text == "-0" {
            return decimal(py, text);
        }
        return py.get_type::<PyInt>().call1((text,));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && same_number(text, &format!("{f:e}")) => Ok(PyFloat::new(py, f).into_any()),
        _ => decimal(py, text),
    }
}

/// Whether two decimal texts (`-1.50`, `1.5e0`, `15e-1`) are the same number.
fn same_number(a: &str, b: &str) -> bool {
    normal(a) == normal(b)
}

/// (negative, significant digits without leading or trailing zeros, exponent of the last one);
/// zero is `(false, "", 0)` whatever its sign.
fn normal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut exponent = exponent - fraction.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    exponent += (trimmed.len() - significant.len()) as i64;
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, significant.to_owned(), exponent))
}

/// A Python value as JSON: `dict` (string keys; `int` keys become strings, as `json.dumps`
/// made them), `list`/`tuple`, `str`, `int`, `float`, `Decimal`, `bool`, `None`. NaN and
/// infinities are a `ValueError` (JSON has none); other types a `TypeError`.
pub(crate) fn from_py(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if value.cast::<PyInt>().is_ok() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        return exact(&value.str()?.to_string());
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        let f = f.value();
        if !f.is_finite() {
            return Err(PyValueError::new_err(format!("{f} is not a JSON number")));
        }
        return Ok(Value::Number(Number::from_f64(f).ok_or_else(|| PyValueError::new_err("not a JSON number"))?));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = Map::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key = if let Ok(s) = key.cast::<PyString>() {
                s.to_cow()?.into_owned()
            } else if key.cast::<PyInt>().is_ok() || key.cast::<PyFloat>().is_ok() || key.cast::<PyBool>().is_ok() {
                // As json.dumps: True → "true", 1 → "1".
                match from_py(&key)? {
                    Value::Bool(b) => b.to_string(),
                    other => other.to_string(),
                }
            } else if key.is_none() {
                "null".to_owned()
            } else {
                return Err(PyTypeError::new_err(format!(
                    "keys must be str, int, float, bool or None, not {}",
                    key.get_type().name()?
                )));
            };
            map.insert(key, from_py(&item)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list.iter().map(|item| from_py(&item)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return tuple.iter().map(|item| from_py(&item)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    let py = value.py();
    if value.is_instance(DECIMAL.import(py, "decimal", "Decimal")?)? {
        if !value.call_method0("is_finite")?.is_truthy()? {
            return Err(PyValueError::new_err(format!("Decimal {} is not a JSON number", value.str()?)));
        }
        return exact(&value.str()?.to_string());
    }
    Err(PyTypeError::new_err(format!("Object of type {} is not JSON serializable", value.get_type().name()?)))
}

/// A number written exactly as given (an `int` beyond 64 bits, a `Decimal`).
fn exact(text: &str) -> PyResult<Value> {
    // Read as JSON text, which keeps the number's own digits (`Number::from_str` would turn
    // `-0` into `0`).
    match serde_json::from_str::<Value>(text) {
        Ok(number @ Value::Number(_)) => Ok(number),
        _ => Err(PyValueError::new_err(format!("{text} is not a JSON number"))),
    }
}

/// Whether a value read back from Python (`now`, by [`from_py`]) is the one `was` converted
/// to Python (by [`to_py`]) unchanged: numbers are the same number of the same class (an
/// integer, or a number with a fraction or an exponent: `1.50` comes back as `1.5`, `1e2` as
/// `100.0`); everything else is equal; an object's field order does not matter.
pub(crate) fn unchanged(now: &Value, was: &Value) -> bool {
    match (now, was) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_str(), b.as_str());
            let integer = |t: &str| !t.contains(['.', 'e', 'E']);
            a == b || (integer(a) == integer(b) && normal(a).is_some() && normal(a) == normal(b))
        }
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| unchanged(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, a)| b.get(key).is_some_and(|b| unchanged(a, b)))
        }
        _ => now == was,
    }
}
