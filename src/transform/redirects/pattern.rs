//! The path patterns of `_redirects` and `_headers`: `/blog/:year/*`, matched against URL paths.
//!
//! A pattern is a path starting with `/`. A segment that is `:name` is a placeholder, matching
//! one segment (no `/`); `*` (a splat) matches the rest of the path, `/` included, or nothing.
//! Netlify allows a splat only at the end of a `_redirects` source; `_headers` patterns may hold
//! one anywhere. Literal text is percent-decoded, so `/caf%C3%A9` and `/café` are one pattern and
//! both match the key `café`. The same tokens become the regular expression of the CloudFront
//! Function ([`Pattern::regex`]), so the function matches what the step matched.

use std::fmt::Write;

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    /// `:name`: one segment.
    Param(String),
    /// `*`: anything, `/` included.
    Splat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub tokens: Vec<Token>,
}

impl Pattern {
    /// Reads `text`, a path starting with `/`; `splat_anywhere` allows `*` before the end.
    pub fn parse(text: &str, splat_anywhere: bool) -> Result<Pattern, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} is not a path: it must start with '/'"));
        }
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let segments: Vec<&str> = text.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                literal.push('/');
            }
            if let Some(name) = segment.strip_prefix(':').filter(|n| is_name(n)) {
                flush(&mut literal, &mut tokens)?;
                tokens.push(Token::Param(name.to_owned()));
                continue;
            }
            let mut pieces = segment.split('*').peekable();
            while let Some(piece) = pieces.next() {
                literal.push_str(piece);
                if pieces.peek().is_some() {
                    flush(&mut literal, &mut tokens)?;
                    tokens.push(Token::Splat);
                }
            }
        }
        flush(&mut literal, &mut tokens)?;
        let last_splat = tokens.iter().rposition(|t| *t == Token::Splat);
        if !splat_anywhere && last_splat.is_some_and(|at| at + 1 != tokens.len()) {
            return Err(format!("{text:?}: `*` may only end the path"));
        }
        if tokens.iter().filter(|t| **t == Token::Splat).count() > 1 && !splat_anywhere {
            return Err(format!("{text:?}: only one `*`"));
        }
        Ok(Pattern { tokens })
    }

    /// The path itself when the pattern has no placeholder and no splat.
    pub fn exact(&self) -> Option<&str> {
        match self.tokens.as_slice() {
            [Token::Literal(path)] => Some(path),
            _ => None,
        }
    }

    /// The literal part before a final splat, when that is all the pattern is (`/blog/*`).
    pub fn prefix(&self) -> Option<&str> {
        match self.tokens.as_slice() {
            [Token::Literal(path), Token::Splat] => Some(path),
            _ => None,
        }
    }

    pub fn has_params(&self) -> bool {
        self.tokens.iter().any(|t| matches!(t, Token::Param(_)))
    }

    /// The captures when `path` (decoded) matches: each placeholder by name, the splat as `splat`.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut captures = Vec::new();
        match_from(&self.tokens, path, &mut captures).then_some(captures)
    }

    /// The pattern as a JavaScript regular expression literal, anchored, with one group per
    /// placeholder and splat in order. `optional_slash` lets a path without a splat end with `/`
    /// or not, as Netlify matches them.
    pub fn regex(&self, optional_slash: bool) -> String {
        let mut out = String::from("/^");
        let last = self.tokens.len().saturating_sub(1);
        let mut open_end = matches!(self.tokens.last(), Some(Token::Splat));
        for (i, token) in self.tokens.iter().enumerate() {
            match token {
                // `/docs/` matches `/docs` too: its last slash is made optional below.
                Token::Literal(text) if i == last && optional_slash && text.ends_with('/') => {
                    escape_regex(&text[..text.len() - 1], &mut out);
                }
                Token::Literal(text) => escape_regex(text, &mut out),
                Token::Param(_) => out.push_str("([^/]+)"),
                Token::Splat => out.push_str("(.*)"),
            }
        }
        open_end |= !optional_slash;
        if !open_end {
            out.push_str("\\/?");
        }
        out.push_str("$/");
        out
    }

    /// The names of the regex's groups, in order.
    pub fn group_names(&self) -> Vec<String> {
        let names = self.tokens.iter().filter_map(|t| match t {
            Token::Param(name) => Some(name.clone()),
            Token::Splat => Some("splat".to_owned()),
            Token::Literal(_) => None,
        });
        names.collect()
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn flush(literal: &mut String, tokens: &mut Vec<Token>) -> Result<(), String> {
    if literal.is_empty() {
        return Ok(());
    }
    let decoded = percent_encoding::percent_decode_str(literal)
        .decode_utf8()
        .map_err(|_| format!("{literal:?} is not UTF-8 once percent-decoded"))?
        .into_owned();
    tokens.push(Token::Literal(decoded));
    literal.clear();
    Ok(())
}

fn match_from(tokens: &[Token], path: &str, captures: &mut Vec<(String, String)>) -> bool {
    let Some((first, rest)) = tokens.split_first() else { return path.is_empty() };
    match first {
        Token::Literal(text) => path.strip_prefix(text.as_str()).is_some_and(|p| match_from(rest, p, captures)),
        Token::Param(name) => {
            // A placeholder is a whole segment: what follows it starts with `/`, or is the end.
            let end = path.find('/').unwrap_or(path.len());
            end > 0 && try_capture(name, &path[..end], rest, &path[end..], captures)
        }
        Token::Splat => {
            let ends: Vec<usize> = path.char_indices().map(|(i, _)| i).chain([path.len()]).collect();
            ends.into_iter().rev().any(|end| try_capture("splat", &path[..end], rest, &path[end..], captures))
        }
    }
}

fn try_capture(name: &str, value: &str, rest: &[Token], path: &str, captures: &mut Vec<(String, String)>) -> bool {
    captures.push((name.to_owned(), value.to_owned()));
    if match_from(rest, path, captures) {
        return true;
    }
    captures.pop();
    false
}

fn escape_regex(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' | '^' | '$' | '.' | '|' | '?' | '*' | '+' | '(' | ')' | '[' | ']' | '{' | '}' | '/' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captures(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        Pattern::parse(pattern, true).unwrap().matches(path)
    }

    #[test]
    fn placeholders_take_one_segment_and_the_splat_the_rest() {
        let got = captures("/blog/:year/:slug", "/blog/2024/hello").unwrap();
        assert_eq!(got, [("year".into(), "2024".into()), ("slug".into(), "hello".into())]);
        assert_eq!(captures("/blog/:year/:slug", "/blog/2024/hello/more"), None);
        assert_eq!(captures("/blog/:year", "/blog/"), None, "a placeholder is never empty");
        let got = captures("/docs/*", "/docs/a/b.html").unwrap();
        assert_eq!(got, [("splat".into(), "a/b.html".into())]);
        assert_eq!(captures("/docs/*", "/docs/").unwrap(), [("splat".into(), String::new())]);
        assert_eq!(captures("/docs/*", "/doc"), None);
        assert!(captures("/*.js", "/a/b.js").is_some(), "a splat before the end, as _headers allows");
        assert!(captures("/*.js", "/a/b.css").is_none());
    }

    #[test]
    fn literals_are_decoded_and_splats_end_a_redirect() {
        assert_eq!(Pattern::parse("/caf%C3%A9", false).unwrap().exact(), Some("/café"));
        assert_eq!(Pattern::parse("/blog/*", false).unwrap().prefix(), Some("/blog/"));
        assert!(Pattern::parse("/*/x", false).unwrap_err().contains("may only end"));
        assert!(Pattern::parse("blog", false).unwrap_err().contains("must start with '/'"));
        assert!(Pattern::parse("/%ff", false).unwrap_err().contains("not UTF-8"));
        assert_eq!(Pattern::parse("/a:b/:1x", false).unwrap().exact(), Some("/a:b/:1x"), "not names");
    }

    #[test]
    fn the_regex_has_a_group_per_capture() {
        let p = Pattern::parse("/blog/:year/*", false).unwrap();
        assert_eq!(p.regex(true), r"/^\/blog\/([^/]+)\/(.*)$/");
        assert_eq!(p.group_names(), ["year", "splat"]);
        assert_eq!(Pattern::parse("/old.html", false).unwrap().regex(true), r"/^\/old\.html\/?$/");
        assert_eq!(Pattern::parse("/café", false).unwrap().regex(false), r"/^\/caf\u00e9$/");
        assert_eq!(Pattern::parse("/docs/", false).unwrap().regex(true), r"/^\/docs\/?$/");
        assert_eq!(Pattern::parse("/", false).unwrap().regex(true), r"/^\/?$/");
    }
}
