//! confo as a source for the configuration crates Rust services already use: a
//! [figment](https://docs.rs/figment) `Provider` (feature `figment`) and a
//! [config-rs](https://docs.rs/config) `Source` (feature `config-rs`).
//!
//! Both read once, when made (their traits are synchronous; reading is not), and serve what
//! they read: a whole namespace as `{configuration: {field: …}}`, or one configuration as the
//! top level. Their metadata names the backend (never its credentials), the namespace and the
//! configuration, so a field of the wrong type is reported where it is. For a value that
//! follows the store, see [`crate::live::Live`], or make a new provider on each change
//! ([`crate::store::Store::watch`]).
//!
//! Numbers keep their type: an integer beyond 64 bits is a 128-bit integer when it fits, a
//! double otherwise.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::error::{Error, Missing, Result};
use crate::store::Store;

/// What a provider or source serves, read from a store.
#[derive(Debug, Clone)]
struct Read {
    /// The backend, as it describes itself (never with credentials).
    backend: String,
    namespace: String,
    /// The one configuration read, or `None` for a whole namespace.
    configuration: Option<String>,
    /// Top-level keys: configurations (a namespace), or fields (one configuration).
    data: BTreeMap<String, Value>,
}

impl Read {
    async fn namespace(store: &Store, namespace: &str) -> Result<Self> {
        let loaded = store.load(namespace).await?;
        let data = loaded.iter().map(|(name, s)| (name.clone(), Value::Object((*s.value).clone()))).collect();
        Ok(Read { backend: store.backend().describe(), namespace: namespace.to_owned(), configuration: None, data })
    }

    async fn configuration(store: &Store, namespace: &str, config: &str) -> Result<Self> {
        let stored = store
            .get(namespace, config)
            .await?
            .ok_or_else(|| Error::not_found(Missing::Configuration, config, format!("namespace {namespace:?}")))?;
        let data = stored.value.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let (backend, configuration) = (store.backend().describe(), Some(config.to_owned()));
        Ok(Read { backend, namespace: namespace.to_owned(), configuration, data })
    }

    /// `confo redis 127.0.0.1:6379 namespace sales`, or `… configuration sales/database`.
    fn name(&self) -> String {
        match &self.configuration {
            Some(config) => self.of(config),
            None => format!("confo {} namespace {}", self.backend, self.namespace),
        }
    }

    /// `confo … configuration <ns>/<config>`.
    fn of(&self, config: &str) -> String {
        format!("confo {} configuration {}/{config}", self.backend, self.namespace)
    }
}

/// A JSON number as the narrowest exact kind: i64, u64, i128, u128, else f64.
enum Number {
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
}

fn number(n: &serde_json::Number) -> Number {
    if let Some(i) = n.as_i64() {
        return Number::I64(i);
    }
    if let Some(u) = n.as_u64() {
        return Number::U64(u);
    }
    let text = n.to_string();
    if let Ok(i) = text.parse::<i128>() {
        return Number::I128(i);
    }
    if let Ok(u) = text.parse::<u128>() {
        return Number::U128(u);
    }
    Number::F64(n.as_f64().unwrap_or(f64::NAN))
}

#[cfg(feature = "figment")]
pub use self::figment_provider::ConfoProvider;

#[cfg(feature = "figment")]
mod figment_provider {
    use figment::value::{Dict, Empty, Map, Num, Tag, Value as FValue};
    use figment::{Metadata, Profile, Provider};

    use super::{number, Number, Read};
    use crate::model::error::Result;
    use crate::store::Store;

    /// A figment [`Provider`] serving what it read from a confo store.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Deserialize)]
    /// struct Settings { database: Database }
    /// #[derive(serde::Deserialize)]
    /// struct Database { host: String, port: u16 }
    /// let store = confo::Store::open(&"redis://127.0.0.1:6379".parse()?).await?;
    /// let settings: Settings = figment::Figment::new()
    ///     .merge(confo::sources::ConfoProvider::namespace(&store, "sales").await?)
    ///     .extract()?;
    /// # Ok(()) }
    /// ```
    #[derive(Debug, Clone)]
    pub struct ConfoProvider {
        read: Read,
        profile: Profile,
    }

    impl ConfoProvider {
        /// A namespace, as `{configuration: {field: …}}`.
        pub async fn namespace(store: &Store, namespace: &str) -> Result<Self> {
            Ok(ConfoProvider { read: Read::namespace(store, namespace).await?, profile: Profile::Default })
        }

        /// One configuration, its fields at the top level ([`crate::model::error::Error::NotFound`] if it
        /// does not exist).
        pub async fn configuration(store: &Store, namespace: &str, config: &str) -> Result<Self> {
            Ok(ConfoProvider { read: Read::configuration(store, namespace, config).await?, profile: Profile::Default })
        }

        /// The same data, under another figment profile (default: `default`).
        pub fn profile(mut self, profile: impl Into<Profile>) -> Self {
            self.profile = profile.into();
            self
        }
    }

    fn convert(value: &serde_json::Value) -> FValue {
        match value {
            serde_json::Value::Null => FValue::Empty(Tag::Default, Empty::None),
            serde_json::Value::Bool(b) => FValue::from(*b),
            serde_json::Value::Number(n) => FValue::Num(
                Tag::Default,
                match number(n) {
                    Number::I64(i) => Num::I64(i),
                    Number::U64(u) => Num::U64(u),
                    Number::I128(i) => Num::I128(i),
                    Number::U128(u) => Num::U128(u),
                    Number::F64(f) => Num::F64(f),
                },
            ),
            serde_json::Value::String(s) => FValue::from(s.clone()),
            serde_json::Value::Array(items) => FValue::from(items.iter().map(convert).collect::<Vec<_>>()),
            serde_json::Value::Object(map) => {
                FValue::from(map.iter().map(|(k, v)| (k.clone(), convert(v))).collect::<Dict>())
            }
        }
    }

    impl Provider for ConfoProvider {
        fn metadata(&self) -> Metadata {
            Metadata::named(self.read.name())
        }

        fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
            let dict: Dict = self.read.data.iter().map(|(k, v)| (k.clone(), convert(v))).collect();
            Ok(Map::from([(self.profile.clone(), dict)]))
        }
    }
}

#[cfg(feature = "config-rs")]
pub use self::config_source::ConfoSource;

#[cfg(feature = "config-rs")]
mod config_source {
    use config::{ConfigError, Map, Source, Value as CValue, ValueKind};

    use super::{number, Number, Read};
    use crate::model::error::Result;
    use crate::store::Store;

    /// A config-rs [`Source`] serving what it read from a confo store; every value's origin
    /// names the backend, the namespace and the configuration.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Deserialize)]
    /// struct Database { host: String, port: u16 }
    /// let store = confo::Store::open(&"redis://127.0.0.1:6379".parse()?).await?;
    /// let db: Database = config::Config::builder()
    ///     .add_source(confo::sources::ConfoSource::configuration(&store, "sales", "database").await?)
    ///     .build()?
    ///     .try_deserialize()?;
    /// # Ok(()) }
    /// ```
    #[derive(Debug, Clone)]
    pub struct ConfoSource {
        read: Read,
    }

    impl ConfoSource {
        /// A namespace, as `{configuration: {field: …}}`.
        pub async fn namespace(store: &Store, namespace: &str) -> Result<Self> {
            Ok(ConfoSource { read: Read::namespace(store, namespace).await? })
        }

        /// One configuration, its fields at the top level ([`crate::model::error::Error::NotFound`] if it
        /// does not exist).
        pub async fn configuration(store: &Store, namespace: &str, config: &str) -> Result<Self> {
            Ok(ConfoSource { read: Read::configuration(store, namespace, config).await? })
        }
    }

    fn convert(value: &serde_json::Value, origin: &String) -> CValue {
        let kind = match value {
            serde_json::Value::Null => ValueKind::Nil,
            serde_json::Value::Bool(b) => ValueKind::Boolean(*b),
            serde_json::Value::Number(n) => match number(n) {
                Number::I64(i) => ValueKind::I64(i),
                Number::U64(u) => ValueKind::U64(u),
                Number::I128(i) => ValueKind::I128(i),
                Number::U128(u) => ValueKind::U128(u),
                Number::F64(f) => ValueKind::Float(f),
            },
            serde_json::Value::String(s) => ValueKind::String(s.clone()),
            serde_json::Value::Array(items) => ValueKind::Array(items.iter().map(|v| convert(v, origin)).collect()),
            serde_json::Value::Object(map) => {
                ValueKind::Table(map.iter().map(|(k, v)| (k.clone(), convert(v, origin))).collect())
            }
        };
        CValue::new(Some(origin), kind)
    }

    impl Source for ConfoSource {
        fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
            Box::new(self.clone())
        }

        fn collect(&self) -> std::result::Result<Map<String, CValue>, ConfigError> {
            Ok(self
                .read
                .data
                .iter()
                .map(|(key, value)| {
                    // A namespace's top-level keys are its configurations: each value names its own.
                    let origin = if self.read.configuration.is_none() { self.read.of(key) } else { self.read.name() };
                    (key.clone(), convert(value, &origin))
                })
                .collect())
        }
    }
}
