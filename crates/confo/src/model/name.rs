//! Names of namespaces, configurations and fields, and the rules they follow.
//!
//! The rules live here and only here. Every backend calls [`validate`] before it writes; a
//! backend with rules of its own (Redis's key layout, for one) adds them through
//! [`crate::backend::Backend::check_name`], which runs after these.
//!
//! | rule | why |
//! | --- | --- |
//! | not empty | an empty file or key name is meaningless |
//! | at most 255 bytes | the longest file name most file systems accept |
//! | no `/`, `\`, NUL or control characters | path separators and terminal garbage |
//! | not `.` or `..`, no leading `.` | would escape the folder, or be a hidden file confo ignores |
//! | in new names: no bidirectional controls (U+202A-202E, U+2066-2069) | `invoice\u{202E}gpj.exe` would show as `invoiceexe.jpg` |
//!
//! The last rule is checked by [`validate_new`], when a namespace is created or a configuration
//! written: names that already exist in a store can still be read and removed (and are shown
//! escaped by the CLI), so nothing stored becomes unreachable.
//!
//! Field names are JSON object keys: any string is accepted, including the empty one.

use std::fmt;

use crate::model::error::{Error, Result};

/// Longest accepted namespace or configuration name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A namespace.
    Namespace,
    /// A configuration.
    Configuration,
    /// A named backend of the manager.
    Backend,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Namespace => "namespace",
            NameKind::Configuration => "configuration",
            NameKind::Backend => "backend",
        })
    }
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// The name checked by the caller (a backend's `BackendExt` methods make these).
            pub(crate) fn checked(name: &str) -> Self {
                $name(name.into())
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

checked_name! {
    /// A namespace name that passed the shared rules and a backend's own: made once, at the
    /// edge ([`BackendExt::namespace`](crate::store::ext::BackendExt::namespace), or the string-taking
    /// methods of `BackendExt`, `Store` and `Confo`), and passed to the engine through the
    /// [`Backend`](crate::backend::Backend) trait, so no engine checks names by hand.
    NamespaceName
}

checked_name! {
    /// A configuration name that passed the shared rules and a backend's own (see
    /// [`NamespaceName`]).
    ConfigName
}

/// A rule a name broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRule {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a forbidden character.
    ForbiddenChar {
        /// The character.
        ch: char,
    },
    /// The name is `.` or `..` or starts with `.`.
    LeadingDot,
    /// A new name contains a bidirectional control character, which makes it display as
    /// something else.
    Bidirectional {
        /// The character.
        ch: char,
    },
    /// A new name contains a character that is not displayed (Unicode's
    /// Default_Ignorable_Code_Point: zero-width spaces and joiners, the soft hyphen, the Hangul
    /// filler, tag characters…) or a line or paragraph separator: two names that look the same
    /// would be two names.
    Invisible {
        /// The character.
        ch: char,
    },
    /// A new name is not in Unicode's NFC form (`café` written with a combining accent): its
    /// NFC form is the name to use.
    NotNfc {
        /// The name in NFC.
        nfc: String,
    },
    /// A new namespace name is canonically equal to an existing one (the same text in another
    /// Unicode form).
    CanonicallyEqual {
        /// The existing name.
        existing: String,
    },
    /// A rule of one backend's layout.
    Backend {
        /// The backend (`redis`).
        backend: &'static str,
        /// The rule and why it exists.
        rule: String,
    },
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRule::Empty => f.write_str("must not be empty"),
            NameRule::TooLong { len } => {
                write!(f, "is {len} bytes long, at most {MAX_NAME_BYTES} are allowed")
            }
            NameRule::ForbiddenChar { ch } => {
                write!(f, "must not contain {ch:?} (no '/', '\\', NUL or control characters)")
            }
            NameRule::LeadingDot => f.write_str("must not be '.' or '..' or start with '.'"),
            NameRule::Bidirectional { ch } => write!(
                f,
                "must not contain the bidirectional control U+{:04X} (it makes a name display as another)",
                u32::from(*ch)
            ),
            NameRule::Invisible { ch } => write!(
                f,
                "must not contain U+{:04X}, which is not displayed (two names would look the same)",
                u32::from(*ch)
            ),
            NameRule::NotNfc { nfc } => {
                write!(f, "is not in Unicode's NFC form (the same text in NFC is {nfc:?}: use that)")
            }
            NameRule::CanonicallyEqual { existing } => {
                write!(f, "is the same text as the existing {existing:?} in another Unicode form")
            }
            NameRule::Backend { backend, rule } => write!(f, "{backend}: {rule}"),
        }
    }
}

/// Checks a namespace, configuration or backend name against the rules every backend shares.
///
/// ```
/// use confo::model::name::{validate, NameKind};
/// assert!(validate(NameKind::Configuration, "app.prod").is_ok());
/// assert!(validate(NameKind::Namespace, "../etc").is_err());
/// ```
pub fn validate(kind: NameKind, name: &str) -> Result<()> {
    rule_broken(name).map_or(Ok(()), |rule| Err(Error::InvalidName { name: name.to_owned(), kind, rule }))
}

/// Checks a name that is about to be created or written: the shared rules of [`validate`], and
/// no bidirectional control characters.
///
/// ```
/// use confo::model::name::{validate_new, NameKind};
/// assert!(validate_new(NameKind::Configuration, "invoice\u{202E}gpj.exe").is_err());
/// assert!(validate_new(NameKind::Configuration, "invoice.pdf").is_ok());
/// ```
pub fn validate_new(kind: NameKind, name: &str) -> Result<()> {
    validate(kind, name)?;
    let refuse = |rule| Err(Error::InvalidName { name: name.to_owned(), kind, rule });
    if let Some(ch) = name.chars().find(|&c| is_bidi_control(c)) {
        return refuse(NameRule::Bidirectional { ch });
    }
    if let Some(ch) = name.chars().find(|&c| is_invisible(c)) {
        return refuse(NameRule::Invisible { ch });
    }
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    if !nfc.is_normalized(name) {
        return refuse(NameRule::NotNfc { nfc: nfc.normalize(name).into_owned() });
    }
    Ok(())
}

/// `name` in Unicode's NFC form: two names canonically equal have the same.
pub(crate) fn nfc(name: &str) -> std::borrow::Cow<'_, str> {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(name)
}

/// True for the characters that change how text around them is displayed (Unicode's
/// Bidi_Control: the embeddings and overrides U+202A-202E, the isolates U+2066-2069, the marks
/// U+200E, U+200F and U+061C).
pub fn is_bidi_control(c: char) -> bool {
    icu_properties::CodePointSetData::new::<icu_properties::props::BidiControl>().contains(c)
}

/// True for the characters that are not displayed (Unicode's Default_Ignorable_Code_Point:
/// zero-width spaces and joiners, U+2060, U+FEFF, the soft hyphen, the Hangul filler, the
/// Mongolian vowel separator, tag characters…) and the line and paragraph separators
/// U+2028 and U+2029.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
        || icu_properties::CodePointSetData::new::<icu_properties::props::DefaultIgnorableCodePoint>().contains(c)
}

/// The first shared rule `name` breaks, if any.
fn rule_broken(name: &str) -> Option<NameRule> {
    if name.is_empty() {
        return Some(NameRule::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(NameRule::TooLong { len: name.len() });
    }
    if let Some(ch) = name.chars().find(|&c| c == '/' || c == '\\' || c.is_control()) {
        return Some(NameRule::ForbiddenChar { ch });
    }
    if name.starts_with('.') {
        return Some(NameRule::LeadingDot);
    }
    None
}

/// True when `name` follows the shared rules (used to skip stored items we would never write).
pub(crate) fn is_valid(name: &str) -> bool {
    rule_broken(name).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> NameRule {
        match validate(NameKind::Namespace, name) {
            Err(Error::InvalidName { rule, .. }) => rule,
            other => panic!("{name:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn each_rule_is_reported() {
        assert_eq!(rule(""), NameRule::Empty);
        assert_eq!(rule(&"a".repeat(256)), NameRule::TooLong { len: 256 });
        assert_eq!(rule("a/b"), NameRule::ForbiddenChar { ch: '/' });
        assert_eq!(rule("a\\b"), NameRule::ForbiddenChar { ch: '\\' });
        assert_eq!(rule("a\0b"), NameRule::ForbiddenChar { ch: '\0' });
        assert_eq!(rule("a\nb"), NameRule::ForbiddenChar { ch: '\n' });
        assert_eq!(rule("a\u{7f}"), NameRule::ForbiddenChar { ch: '\u{7f}' });
        assert_eq!(rule("."), NameRule::LeadingDot);
        assert_eq!(rule(".."), NameRule::LeadingDot);
        assert_eq!(rule(".hidden"), NameRule::LeadingDot);
    }

    #[test]
    fn new_names_refuse_bidirectional_controls_that_old_ones_may_hold() {
        for ch in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            let name = format!("invoice{ch}gpj.exe");
            validate(NameKind::Configuration, &name).expect("an existing name stays readable");
            match validate_new(NameKind::Configuration, &name) {
                Err(Error::InvalidName { rule: NameRule::Bidirectional { ch: found }, .. }) => assert_eq!(found, ch),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        validate_new(NameKind::Namespace, "שלום-עולם").expect("right-to-left letters are fine");
    }

    #[test]
    fn new_names_refuse_invisible_characters_and_other_unicode_forms() {
        for ch in [
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2028}',
            '\u{3164}',
            '\u{180E}',
            '\u{E0041}',
        ] {
            let name = format!("pay{ch}ments");
            validate(NameKind::Namespace, &name).expect("an existing name stays readable");
            let err = validate_new(NameKind::Namespace, &name).expect_err(&format!("U+{:04X}", u32::from(ch)));
            assert!(err.to_string().contains(&format!("U+{:04X}", u32::from(ch))), "{err}");
        }
        let decomposed = "cafe\u{301}";
        validate(NameKind::Configuration, decomposed).expect("readable");
        match validate_new(NameKind::Configuration, decomposed) {
            Err(Error::InvalidName { rule: NameRule::NotNfc { nfc }, .. }) => assert_eq!(nfc, "caf\u{e9}"),
            other => panic!("{other:?}"),
        }
        validate_new(NameKind::Configuration, "caf\u{e9}").expect("NFC is fine");
        for fine in ["sales", "ünïcödé", "שלום-עולם", "日本語", "emoji-🎉", "a b"] {
            validate_new(NameKind::Namespace, fine).expect(fine);
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for name in ["sales", "HR_dept", "app.prod", "a-b", "ünïcödé", "x..y", &"a".repeat(255)] {
            validate(NameKind::Configuration, name).expect(name);
        }
        // 255 bytes of a multi-byte character is the limit in bytes, not characters.
        assert!(validate(NameKind::Namespace, &"é".repeat(128)).is_err());
    }

    #[test]
    fn message_names_the_name_and_rule() {
        let err = validate(NameKind::Configuration, "a/b").unwrap_err().to_string();
        assert!(err.contains("configuration") && err.contains("\"a/b\"") && err.contains("'/'"), "{err}");
    }
}
