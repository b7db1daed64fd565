//! Forgiving field readers for providers' answers: a field of an unexpected type reads
//! as its default instead of failing the whole answer (providers differ in small ways,
//! and a missing detail such as a token count must not lose a completion).
//!
//! Use them as `#[serde(default, deserialize_with = "…")]`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The field as `T`, or `T::default()` when it has another shape.
pub(crate) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).unwrap_or_default())
}

/// `Some` whenever the field is present (even as `null`), holding it as `T` or
/// `T::default()`; an absent field is `None` through `#[serde(default)]`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(Some(
        serde_json::from_value(Value::deserialize(d)?).unwrap_or_default(),
    ))
}

/// An array's items, each as `T` or `T::default()`; `None` when the field is no array.
pub(crate) fn array<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .map(|item| serde_json::from_value(item).unwrap_or_default())
                .collect(),
        ),
        _ => None,
    })
}

/// Like [`array`], with no array read as an empty list.
pub(crate) fn items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(array(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct Probe {
        #[serde(default, deserialize_with = "or_default")]
        n: u64,
        #[serde(default, deserialize_with = "present")]
        p: Option<Value>,
        #[serde(default, deserialize_with = "array")]
        a: Option<Vec<u64>>,
        #[serde(default, deserialize_with = "items")]
        i: Vec<u64>,
    }

    #[test]
    fn odd_shapes_read_as_defaults() {
        let odd: Probe =
            serde_json::from_value(json!({"n": "7", "p": null, "a": {}, "i": [1, "x", 3]}))
                .unwrap();
        assert_eq!(
            odd,
            Probe {
                n: 0,
                p: Some(Value::Null),
                a: None,
                i: vec![1, 0, 3]
            }
        );
        let absent: Probe = serde_json::from_value(json!({})).unwrap();
        assert_eq!(absent, Probe::default());
        let good: Probe =
            serde_json::from_value(json!({"n": 7, "p": 1, "a": [2], "i": [3]})).unwrap();
        assert_eq!((good.n, good.a, good.i), (7, Some(vec![2]), vec![3]));
    }
}
