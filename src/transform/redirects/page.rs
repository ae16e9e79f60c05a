//! The body of a redirect object: a tiny HTML page that sends the visitor on too.
//!
//! The website endpoint answers a redirect object with a 301 and never shows its body, but a
//! CloudFront distribution reading the bucket's REST endpoint ignores the redirect header and
//! serves the body: the page's `<meta http-equiv="refresh">` (and its link, for what follows no
//! refresh) still gets the visitor to the target. The target is in the bytes, so a changed target
//! changes the ETag the diff compares, and the object is published again.

/// The page for a redirect to `location` (already safe for a header: visible ASCII).
pub fn page(location: &str) -> Vec<u8> {
    let to = escape(location);
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Moved</title>\n\
         <meta http-equiv=\"refresh\" content=\"0; url={to}\">\n<link rel=\"canonical\" href=\"{to}\">\n\
         <meta name=\"robots\" content=\"noindex\">\n</head>\n<body>\n<p>This page has moved to \
         <a href=\"{to}\">{to}</a>.</p>\n</body>\n</html>\n"
    )
    .into_bytes()
}

/// `text` safe in an HTML attribute and in text.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refreshes_to_the_target_and_links_it_escaped() {
        let page = String::from_utf8(page("/new/?a=1&b=\"2\"")).unwrap();
        assert!(
            page.contains(r#"<meta http-equiv="refresh" content="0; url=/new/?a=1&amp;b=&quot;2&quot;">"#),
            "{page}"
        );
        assert!(page.contains(r#"<a href="/new/?a=1&amp;b=&quot;2&quot;">"#), "{page}");
        assert_ne!(super::page("/a"), super::page("/b"), "another target, other bytes");
    }
}
