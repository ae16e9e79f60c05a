//! The Content-Type an object gets when nothing in the chain sets one: one table, here.
//!
//! Browsers enforce some types: a module script must come with a JavaScript type, a stylesheet
//! with `text/css` (under `X-Content-Type-Options: nosniff`), and `WebAssembly.instantiateStreaming`
//! refuses anything but `application/wasm`. mime_guess gets some of these wrong or lacks them
//! (`.mjs` → `application/javascript`, `.map` → `text/plain`), so [`WEB`] overrides it for the
//! extensions a site ships; every other extension is mime_guess's, else
//! `application/octet-stream`. A page served as bare `text/html` without `<meta charset>` is read
//! as windows-1252, so the text types get `; charset=utf-8` (config key `default_charset`; an
//! empty value sends none). A `content_type` a `headers` rule or a plugin sets is sent as it is.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

/// What is sent when nothing says what a key is.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Extensions (lowercase) whose type a browser checks, or that mime_guess lacks or gets wrong.
pub const WEB: [(&str, &str); 10] = [
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("css", "text/css"),
    ("wasm", "application/wasm"),
    ("webmanifest", "application/manifest+json"),
    ("avif", "image/avif"),
    ("woff2", "font/woff2"),
    ("map", "application/json"),
    ("svg", "image/svg+xml"),
    ("json", "application/json"),
];

/// The types that get the default charset.
const TEXT: [&str; 4] = ["text/html", "text/css", "text/javascript", "text/plain"];

/// The type of a key by its extension, without parameters.
pub fn essence(key: &str) -> &'static str {
    let Some(ext) = Path::new(key).extension().and_then(|e| e.to_str()) else { return OCTET_STREAM };
    if let Some((_, web)) = WEB.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)) {
        return web;
    }
    mime_guess::from_ext(ext).first_raw().unwrap_or(OCTET_STREAM)
}

/// The Content-Type of a key by its extension, with the charset when it is a text type.
pub fn content_type(key: &str, charset: &Charset) -> Cow<'static, str> {
    let essence = essence(key);
    match &charset.0 {
        Some(name) if TEXT.contains(&essence) => Cow::Owned(format!("{essence}; charset={name}")),
        _ => Cow::Borrowed(essence),
    }
}

/// The charset the text types are sent with; `None` sends none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charset(Option<Arc<str>>);

impl Default for Charset {
    fn default() -> Self {
        Charset(Some("utf-8".into()))
    }
}

impl Charset {
    /// A charset name as `default_charset` gives it: an HTTP token, or empty for none.
    pub fn parse(name: &str) -> Result<Charset, String> {
        if name.is_empty() {
            return Ok(Charset(None));
        }
        // RFC 9110's `tchar`: what a parameter value may hold without quotes.
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.bytes().all(tchar) {
            Ok(Charset(Some(name.into())))
        } else {
            Err(format!("{name:?} is not a charset name (letters, digits and !#$%&'*+-.^_`|~; \"\" for none)"))
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// Whether a key is a page (HTML), to be published after the assets it may refer to.
pub fn is_page(key: &str) -> bool {
    let lower = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_browsers_enforce_come_from_the_table() {
        let utf8 = Charset::default();
        for (key, expected) in [
            ("js/app.js", "text/javascript; charset=utf-8"),
            ("js/mod.MJS", "text/javascript; charset=utf-8"),
            ("css/site.css", "text/css; charset=utf-8"),
            ("add.wasm", "application/wasm"),
            ("site.webmanifest", "application/manifest+json"),
            ("img/a.avif", "image/avif"),
            ("fonts/a.woff2", "font/woff2"),
            ("js/app.js.map", "application/json"),
            ("logo.svg", "image/svg+xml"),
            ("data.json", "application/json"),
        ] {
            assert_eq!(content_type(key, &utf8), expected, "{key}");
        }
    }

    #[test]
    fn other_extensions_are_mime_guess_and_text_gets_the_charset() {
        let utf8 = Charset::default();
        assert_eq!(content_type("index.html", &utf8), "text/html; charset=utf-8");
        assert_eq!(content_type("robots.txt", &utf8), "text/plain; charset=utf-8");
        assert_eq!(content_type("a/b.png", &utf8), "image/png");
        assert_eq!(content_type("a.tar.gz", &utf8), mime_guess::from_ext("gz").first_raw().unwrap());
        // No extension, a dot file, an unknown extension, a dot in a folder's name.
        for key in ["LICENSE", ".htaccess", "a.qqqzz", "v1.2/notes"] {
            assert_eq!(content_type(key, &utf8), OCTET_STREAM, "{key}");
        }
    }

    #[test]
    fn the_charset_can_be_changed_or_turned_off() {
        assert_eq!(content_type("a.css", &Charset::parse("iso-8859-1").unwrap()), "text/css; charset=iso-8859-1");
        let none = Charset::parse("").unwrap();
        assert_eq!(none.name(), None);
        assert_eq!(content_type("a.css", &none), "text/css");
        assert_eq!(content_type("a.html", &none), "text/html");
        for bad in ["utf 8", "utf-8;x=1", "\"utf-8\"", "é"] {
            assert!(Charset::parse(bad).is_err(), "{bad:?}");
        }
    }
}
