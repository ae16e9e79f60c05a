//! Reading the sections out of the merged layers, and refusing keys no section reads.
//!
//! `sync.toml` is one flat table, but each feature declares its keys in its own section struct.
//! Each section is extracted from the same figment on its own, so a bad value keeps figment's key
//! and origin ("sync.toml: key `workers`: invalid type: ..."), which `#[serde(flatten)]` would
//! lose. Sections ignore the keys of the others; a key that no section declares is a typo, refused
//! by name once every section was read. The declared keys come from serde itself (the field list
//! its derive passes to `deserialize_struct`), so a key is still spelled only in its section.

use std::collections::BTreeSet;

use figment::Figment;
use figment::value::Dict;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::error::{ConfigError, Origins, describe};

/// Extracts sections from one figment, remembering which keys they read.
pub(super) struct Sections<'a> {
    figment: &'a Figment,
    known: BTreeSet<&'static str>,
}

impl<'a> Sections<'a> {
    pub fn new(figment: &'a Figment) -> Self {
        Sections { figment, known: BTreeSet::new() }
    }

    /// Section `T`, its keys taken from every layer; its keys are known from now on.
    pub fn read<T: DeserializeOwned>(&mut self) -> Result<T, ConfigError> {
        self.known.extend(keys_of::<T>());
        self.figment.extract().map_err(describe)
    }

    /// Refuses every key that no section read, one line each, naming where it was set.
    pub fn refuse_unknown(self) -> Result<(), ConfigError> {
        let all: Dict = self.figment.extract().map_err(describe)?;
        let origins = Origins(self.figment);
        let unknown: Vec<String> = all
            .keys()
            .filter(|key| !self.known.contains(key.as_str()))
            .map(|key| format!("{}: unknown key `{key}`", origins.of(key)))
            .collect();
        match unknown.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid(unknown.join("\n"))),
        }
    }
}

/// The keys section `T` reads: the field names serde's derive hands to `deserialize_struct`.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the recorder reads the field names and nothing else.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that records the fields a struct asks for, then stops.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only the field names are read"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("a section is a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}
