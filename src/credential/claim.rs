//! A JSON value as seen by the claim checker: its type, and for a string its
//! text in a zeroized, exactly-sized buffer. Deserializing through this type
//! (instead of `serde_json::Value`) lets errors name the claim and its wrong
//! type without echoing its value, and keeps secret strings out of
//! un-zeroized allocations.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use zeroize::Zeroizing;

pub(crate) enum ClaimValue {
    Str(Zeroizing<String>),
    Int(i64),
    /// An integer that does not fit an i64, or a number with a fraction.
    OtherNumber,
    Bool(bool),
    Null,
    Array,
    Object,
}

impl ClaimValue {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            ClaimValue::Str(_) => "a string",
            ClaimValue::Int(_) => "an integer",
            ClaimValue::OtherNumber => "a non-integer or out-of-range number",
            ClaimValue::Bool(_) => "a boolean",
            ClaimValue::Null => "null",
            ClaimValue::Array => "an array",
            ClaimValue::Object => "an object",
        }
    }
}

/// Copies `s` into a zeroized buffer of exactly its length.
pub(crate) fn zeroizing_copy(s: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len()));
    out.push_str(s);
    out
}

impl<'de> de::Deserialize<'de> for ClaimValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = ClaimValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ClaimValue, E> {
        Ok(i64::try_from(v).map_or(ClaimValue::OtherNumber, ClaimValue::Int))
    }
    fn visit_f64<E>(self, _v: f64) -> Result<ClaimValue, E> {
        Ok(ClaimValue::OtherNumber)
    }
    fn visit_str<E>(self, v: &str) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Str(zeroizing_copy(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<ClaimValue, E> {
        let v = Zeroizing::new(v);
        Ok(ClaimValue::Str(zeroizing_copy(&v)))
    }
    fn visit_unit<E>(self) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Null)
    }
    fn visit_none<E>(self) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ClaimValue, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ClaimValue::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimValue, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ClaimValue::Object)
    }
}

/// Describes a serde_json error without its message (which can quote
/// input), as a verb phrase: "is not valid JSON (…)", "has the field `x`
/// more than once", "is not a JSON object".
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => {
            format!(
                "is not valid JSON (error at line {} column {})",
                e.line(),
                e.column()
            )
        }
        Category::Data => {
            let msg = e.to_string();
            if let Some(rest) = msg.strip_prefix("duplicate field `") {
                let name = rest.split('`').next().unwrap_or("");
                format!("has the field `{name}` more than once")
            } else {
                "is not a JSON object".to_string()
            }
        }
        Category::Io => "could not be read".to_string(),
    }
}

/// A present field, even `null`, is `Some` (serde would turn `null` into
/// `None`, hiding a wrong-typed field behind "missing"). Use with
/// `#[serde(default, deserialize_with = "present")]`.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ClaimValue>, D::Error> {
    <ClaimValue as de::Deserialize>::deserialize(d).map(Some)
}
