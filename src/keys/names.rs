//! Turning on-disk file names into S3 key components.
//!
//! Names on disk are bytes. The configured encoding decodes them (UTF-8 strictly by default;
//! latin-1, the original tool's default, maps every byte to the code point of the same value), and
//! optional NFC normalisation folds the decomposed names that macOS writes. A name that does not
//! decode is refused with its escaped bytes, never replaced with look-alike characters: a mangled
//! key would upload under one name and delete under another on the next run.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    Other(&'static encoding_rs::Encoding),
}

#[derive(Debug, Clone, Copy)]
pub struct NameDecoder {
    charset: Charset,
    nfc: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("unknown encoding {0:?} (try utf-8, latin-1, windows-1252, shift_jis, ...)")]
    UnknownEncoding(String),
    #[error("unknown normalization {0:?} (expected \"none\" or \"nfc\")")]
    UnknownNormalization(String),
}

impl NameDecoder {
    pub fn new(encoding: &str, normalize: &str) -> Result<NameDecoder, NameError> {
        let label = encoding.trim().to_ascii_lowercase();
        let charset = match label.as_str() {
            "utf-8" | "utf8" => Charset::Utf8,
            // WHATWG maps these labels to windows-1252; Python's latin-1 is the real ISO-8859-1.
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Charset::Latin1,
            _ => match encoding_rs::Encoding::for_label_no_replacement(label.as_bytes()) {
                Some(e) if e == encoding_rs::UTF_8 => Charset::Utf8,
                Some(e) => Charset::Other(e),
                None => return Err(NameError::UnknownEncoding(encoding.to_owned())),
            },
        };
        let nfc = match normalize.trim().to_ascii_lowercase().as_str() {
            "" | "none" => false,
            "nfc" => true,
            _ => return Err(NameError::UnknownNormalization(normalize.to_owned())),
        };
        Ok(NameDecoder { charset, nfc })
    }

    /// Decodes one path component, or returns why it cannot be a key component.
    pub fn decode(&self, name: &OsStr) -> Result<String, String> {
        let bytes = name.as_bytes();
        let decoded = match self.charset {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
            Charset::Latin1 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
            Charset::Other(e) => e.decode_without_bom_handling_and_without_replacement(bytes).map(|s| s.into_owned()),
        };
        let Some(decoded) = decoded else {
            return Err(format!("name \"{}\" is not valid {}", escape(bytes), self.charset_name()));
        };
        Ok(if self.nfc && !decoded.is_ascii() { decoded.nfc().collect() } else { decoded })
    }

    /// The on-disk names that [`decode`](Self::decode) turns into `component`: none when the
    /// encoding cannot write it, and with NFC both the composed and the decomposed spelling.
    pub fn encodings_of(&self, component: &str) -> Vec<Vec<u8>> {
        let encode = |text: &str| -> Option<Vec<u8>> {
            match self.charset {
                Charset::Utf8 => Some(text.as_bytes().to_vec()),
                Charset::Latin1 => text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
                Charset::Other(e) => {
                    let (bytes, _, unmappable) = e.encode(text);
                    (!unmappable).then(|| bytes.into_owned())
                }
            }
        };
        let mut spellings = vec![component.to_owned()];
        if self.nfc && !component.is_ascii() {
            spellings.push(component.nfd().collect());
        }
        let mut names: Vec<Vec<u8>> = spellings.iter().filter_map(|s| encode(s)).collect();
        names.dedup();
        names
    }

    fn charset_name(&self) -> &'static str {
        match self.charset {
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "latin-1",
            Charset::Other(e) => e.name(),
        }
    }
}

/// Escaped bytes of a name, as printable ASCII (`caf\xe9`).
pub fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// A key as it may be printed in a log line: control characters (a newline would forge a second
/// line) and bidirectional overrides (which reorder what a terminal shows) are written as escapes;
/// everything else, backslashes included, is left as it is.
pub fn printable(key: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !key.chars().any(hidden) {
        return key.into();
    }
    key.chars().map(|c| if hidden(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn os(bytes: &[u8]) -> &OsStr {
        OsStr::from_bytes(bytes)
    }

    #[test]
    fn printable_escapes_only_what_forges_output() {
        assert_eq!(printable(r"a\b/café"), r"a\b/café");
        assert_eq!(printable("new\nline\u{202e}txt"), r"new\nline\u{202e}txt");
    }

    #[test]
    fn utf8_is_strict() {
        let d = NameDecoder::new("utf-8", "none").unwrap();
        assert_eq!(d.decode(os("café.html".as_bytes())).unwrap(), "café.html");
        let err = d.decode(os(b"caf\xe9.html")).unwrap_err();
        assert!(err.contains(r"caf\xe9.html"), "{err}");
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        let d = NameDecoder::new("latin-1", "none").unwrap();
        assert_eq!(d.decode(os(b"caf\xe9")).unwrap(), "café");
        // 0x80 is U+0080 in ISO-8859-1, not the euro sign of windows-1252.
        assert_eq!(d.decode(os(b"\x80")).unwrap(), "\u{80}");
        let w = NameDecoder::new("windows-1252", "none").unwrap();
        assert_eq!(w.decode(os(b"\x80")).unwrap(), "€");
    }

    #[test]
    fn nfc_folds_decomposed_names() {
        let d = NameDecoder::new("utf-8", "nfc").unwrap();
        assert_eq!(d.decode(os("cafe\u{301}".as_bytes())).unwrap(), "caf\u{e9}");
    }

    #[test]
    fn names_are_encoded_back_to_what_decodes_to_them() {
        let latin1 = NameDecoder::new("latin-1", "none").unwrap();
        assert_eq!(latin1.encodings_of("café"), [b"caf\xe9".to_vec()]);
        assert!(latin1.encodings_of("日本").is_empty(), "latin-1 cannot write it, so no such file exists");
        let nfc = NameDecoder::new("utf-8", "nfc").unwrap();
        assert_eq!(nfc.encodings_of("caf\u{e9}"), ["caf\u{e9}".as_bytes().to_vec(), "cafe\u{301}".as_bytes().to_vec()]);
        for name in nfc.encodings_of("caf\u{e9}") {
            assert_eq!(nfc.decode(os(&name)).unwrap(), "caf\u{e9}");
        }
    }

    #[test]
    fn unknown_settings_are_named() {
        assert!(matches!(NameDecoder::new("klingon", "none"), Err(NameError::UnknownEncoding(_))));
        assert!(matches!(NameDecoder::new("utf-8", "nfd"), Err(NameError::UnknownNormalization(_))));
    }
}
