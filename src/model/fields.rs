//! The object headers sitesync sets, declared once.
//!
//! One table, [`FIELDS`], names each header three ways (its key in a `headers` rule of
//! `sync.toml`, its HTTP name in a plan line, its slot in the plugin ABI) and says what a valid
//! value is. Config parsing, validation, the plan, the plugin host and the requests
//! (PutObject, CreateMultipartUpload, CopyObject, through [`with_headers!`]) all read the table,
//! so adding a header is one row and one setter.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A header the chain can set on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    CacheControl,
    ContentType,
    ContentEncoding,
    ContentDisposition,
    ContentLanguage,
    StorageClass,
    WebsiteRedirectLocation,
}

/// How one header is named and checked.
pub struct FieldSpec {
    pub field: Field,
    /// Its key in a `headers` rule: `cache_control`.
    pub key: &'static str,
    /// Its name on the wire, as a plan line shows it: `Cache-Control`.
    pub header: &'static str,
    /// Why a value cannot be sent, if it cannot.
    pub check: fn(&str) -> Result<(), String>,
}

/// How many header fields there are.
pub const FIELD_COUNT: usize = 7;

/// Every header, in the order plans list them.
pub const FIELDS: [FieldSpec; FIELD_COUNT] = [
    FieldSpec { field: Field::CacheControl, key: "cache_control", header: "Cache-Control", check: visible_ascii },
    FieldSpec { field: Field::ContentType, key: "content_type", header: "Content-Type", check: visible_ascii },
    FieldSpec {
        field: Field::ContentEncoding,
        key: "content_encoding",
        header: "Content-Encoding",
        check: visible_ascii,
    },
    FieldSpec {
        field: Field::ContentDisposition,
        key: "content_disposition",
        header: "Content-Disposition",
        check: visible_ascii,
    },
    FieldSpec {
        field: Field::ContentLanguage,
        key: "content_language",
        header: "Content-Language",
        check: visible_ascii,
    },
    FieldSpec { field: Field::StorageClass, key: "storage_class", header: "x-amz-storage-class", check: storage_class },
    FieldSpec {
        field: Field::WebsiteRedirectLocation,
        key: "website_redirect_location",
        header: "x-amz-website-redirect-location",
        check: redirect,
    },
];

impl Field {
    pub fn spec(self) -> &'static FieldSpec {
        &FIELDS[self as usize]
    }

    /// The field a `headers` rule key names.
    pub fn by_key(key: &str) -> Option<Field> {
        FIELDS.iter().find(|s| s.key == key).map(|s| s.field)
    }
}

/// HTTP header values: visible ASCII, spaces and tabs.
pub fn visible_ascii(v: &str) -> Result<(), String> {
    if v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(format!("{v:?} cannot be sent as an HTTP header (visible ASCII only)"))
    }
}

fn storage_class(v: &str) -> Result<(), String> {
    let known = aws_sdk_s3::types::StorageClass::values();
    if known.contains(&v) { Ok(()) } else { Err(format!("unknown storage class {v:?} (one of {})", known.join(", "))) }
}

fn redirect(v: &str) -> Result<(), String> {
    visible_ascii(v)?;
    if v.starts_with('/') || v.starts_with("http://") || v.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{v:?} must start with '/', http:// or https://"))
    }
}

/// The user metadata sitesync writes on a compressed entry's object (`x-amz-meta-NAME`): the size
/// in bytes of the source file its bytes were made from. A listing does not return it; a HEAD
/// does, for the compressed keys a run without a state cannot settle otherwise (`sink::head`).
pub const SOURCE_SIZE: &str = "sitesync-source-size";

/// Whether `name` can be a user metadata name (sent as `x-amz-meta-NAME`).
pub fn check_metadata_name(name: &str) -> Result<(), String> {
    let valid =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if valid { Ok(()) } else { Err("metadata names are lowercase letters, digits, '-', '_' and '.'".into()) }
}

/// The headers and metadata of an object that the chain sets; an unset field is left unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectMeta {
    values: [Option<String>; FIELD_COUNT],
    /// User metadata, sent as `x-amz-meta-NAME` headers.
    pub metadata: BTreeMap<String, String>,
}

impl ObjectMeta {
    pub fn get(&self, field: Field) -> Option<&str> {
        self.values[field as usize].as_deref()
    }

    pub fn set(&mut self, field: Field, value: impl Into<String>) {
        self.values[field as usize] = Some(value.into());
    }

    /// Unsets a field, giving back its value.
    pub fn take(&mut self, field: Field) -> Option<String> {
        self.values[field as usize].take()
    }

    /// The fields that are set, in [`FIELDS`] order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, &str)> {
        FIELDS.iter().filter_map(|spec| Some((spec.field, self.get(spec.field)?)))
    }

    /// Sets every field `other` sets, and merges its metadata name by name.
    pub fn merge(&mut self, other: &ObjectMeta) {
        for (field, value) in other.fields() {
            self.set(field, value);
        }
        for (k, v) in &other.metadata {
            self.metadata.insert(k.clone(), v.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == ObjectMeta::default()
    }

    /// ` [Cache-Control: max-age=60; x-amz-meta-team: web]`: the headers as a plan line shows
    /// them, in a fixed order; empty when none is set.
    pub fn shown(&self) -> String {
        let mut parts: Vec<String> =
            self.fields().map(|(field, value)| format!("{}: {value}", field.spec().header)).collect();
        parts.extend(self.metadata.iter().map(|(k, v)| format!("x-amz-meta-{k}: {v}")));
        if parts.is_empty() { String::new() } else { format!(" [{}]", parts.join("; ")) }
    }
}

/// Sets Content-Type and every header of `$meta` (an `Option<&ObjectMeta>`) on a PutObject,
/// CreateMultipartUpload or CopyObject request builder: they share the setters, not a trait.
#[macro_export]
macro_rules! with_headers {
    ($builder:expr, $content_type:expr, $meta:expr) => {{
        use $crate::model::fields::Field;
        let mut b = $builder.content_type($content_type);
        if let Some(meta) = $meta {
            for (field, value) in meta.fields() {
                b = match field {
                    // Set above: the chain's, or one guessed from the key.
                    Field::ContentType => b,
                    Field::CacheControl => b.cache_control(value),
                    Field::ContentEncoding => b.content_encoding(value),
                    Field::ContentDisposition => b.content_disposition(value),
                    Field::ContentLanguage => b.content_language(value),
                    Field::StorageClass => b.storage_class(aws_sdk_s3::types::StorageClass::from(value)),
                    Field::WebsiteRedirectLocation => b.website_redirect_location(value),
                };
            }
            for (k, v) in &meta.metadata {
                b = b.metadata(k, v);
            }
        }
        b
    }};
}

/// The headers [`with_headers!`] sets, by their names on the wire, for a request built by hand
/// (the direct PutObject, `s3client::direct`): Content-Type, then every field of `$meta` but its
/// Content-Type, then its metadata.
pub fn header_list(content_type: &str, meta: Option<&ObjectMeta>) -> Vec<(Cow<'static, str>, String)> {
    let mut headers = vec![(Cow::Borrowed(Field::ContentType.spec().header), content_type.to_owned())];
    if let Some(meta) = meta {
        let fields = meta.fields().filter(|(field, _)| *field != Field::ContentType);
        headers.extend(fields.map(|(field, value)| (Cow::Borrowed(field.spec().header), value.to_owned())));
        headers.extend(meta.metadata.iter().map(|(k, v)| (Cow::Owned(format!("x-amz-meta-{k}")), v.clone())));
    }
    headers
}

/// Sets `name` to `value` in a [`header_list`], replacing the value it had, as a setter of the
/// SDK's request builder does.
pub fn set_header(headers: &mut Vec<(Cow<'static, str>, String)>, name: Cow<'static, str>, value: String) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
    headers.push((name, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_field_order() {
        for (i, spec) in FIELDS.iter().enumerate() {
            assert_eq!(spec.field as usize, i, "{}", spec.key);
            assert_eq!(Field::by_key(spec.key), Some(spec.field));
        }
    }

    #[test]
    fn merging_overrides_field_by_field() {
        let mut a = ObjectMeta::default();
        a.set(Field::CacheControl, "max-age=60");
        a.metadata.insert("team".into(), "web".into());
        let mut b = ObjectMeta::default();
        b.set(Field::ContentEncoding, "gzip");
        b.metadata.insert("tier".into(), "static".into());
        a.merge(&b);
        assert_eq!(
            a.shown(),
            " [Cache-Control: max-age=60; Content-Encoding: gzip; x-amz-meta-team: web; x-amz-meta-tier: static]"
        );
    }

    #[test]
    fn the_header_list_names_what_the_request_builders_set() {
        let mut meta = ObjectMeta::default();
        meta.set(Field::ContentType, "text/plain");
        meta.set(Field::CacheControl, "max-age=60");
        meta.set(Field::WebsiteRedirectLocation, "/elsewhere");
        meta.metadata.insert("team".into(), "web".into());
        let mut headers = header_list("text/html", Some(&meta));
        set_header(&mut headers, "content-type".into(), "text/css".into());
        let shown: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        assert_eq!(
            shown,
            [
                "Cache-Control: max-age=60",
                "x-amz-website-redirect-location: /elsewhere",
                "x-amz-meta-team: web",
                "content-type: text/css"
            ]
        );
    }

    #[test]
    fn bad_values_say_why() {
        assert!((Field::CacheControl.spec().check)("max-age=1\n").is_err());
        assert!((Field::StorageClass.spec().check)("COLD").unwrap_err().contains("unknown storage class"));
        assert!((Field::WebsiteRedirectLocation.spec().check)("elsewhere").is_err());
        assert!(check_metadata_name("Team").is_err());
    }
}
