//! The index page of one folder: its HTML, made only from the names and sizes of its entries, so
//! the same folder always gives the same bytes (no date, no time), and an unchanged folder's page
//! is found the same by content and not uploaded again.

/// One line of a folder's index: a file or a subfolder, by its name in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub folder: bool,
    /// The file's size as the entry said; none for a subfolder.
    pub size: Option<u64>,
}

/// The page of folder `prefix` (`""` for the root, `docs/api/` for a folder), listing `entries`
/// in key order, a subfolder with a trailing `/`, dot-files and dot-folders left out.
pub fn render(prefix: &str, mut entries: Vec<Listed>) -> String {
    entries.retain(|e| !e.name.starts_with('.'));
    // S3's order: by bytes, a subfolder as its name and a `/`.
    entries.sort_by_cached_key(|e| if e.folder { format!("{}/", e.name) } else { e.name.clone() });
    entries.dedup();
    let title = format!("Index of /{}", escape(prefix));
    let mut html = String::with_capacity(400 + entries.len() * 100);
    html.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!("<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<table>\n"));
    html.push_str("<tr><th>Name</th><th>Size</th></tr>\n");
    if !prefix.is_empty() {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td></tr>\n");
    }
    for entry in &entries {
        let slash = if entry.folder { "/" } else { "" };
        let size = entry.size.map(|s| s.to_string()).unwrap_or_default();
        html.push_str(&format!(
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td>{size}</td></tr>\n",
            url_encode(&entry.name),
            escape(&entry.name)
        ));
    }
    html.push_str("</table>\n</body>\n</html>\n");
    html
}

/// Text as HTML shows it: the five characters that could end a text or an attribute escaped.
pub fn escape(text: &str) -> String {
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

/// A name as one segment of a relative URL: every byte of its UTF-8 but the unreserved ones
/// (`A-Z a-z 0-9 - . _ ~`) percent-encoded, so no name reads as a scheme (`a:b`), a query, a
/// fragment or another folder, and the result needs no HTML escaping.
pub fn url_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> Listed {
        Listed { name: name.into(), folder: false, size: Some(size) }
    }

    fn folder(name: &str) -> Listed {
        Listed { name: name.into(), folder: true, size: None }
    }

    #[test]
    fn names_are_escaped_in_the_text_and_encoded_in_the_link() {
        assert_eq!(escape("a&b <c>\"'"), "a&amp;b &lt;c&gt;&quot;&#39;");
        assert_eq!(url_encode("a&b <c>.txt"), "a%26b%20%3Cc%3E.txt");
        assert_eq!(url_encode("é/x?y#z:w"), "%C3%A9%2Fx%3Fy%23z%3Aw");
        assert_eq!(url_encode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn entries_come_in_key_order_folders_with_a_slash_and_dot_files_hidden() {
        // `a.b` sorts before the folder `a/` (`.` is below `/`), and `a-` before both.
        let html = render("x/", vec![folder("a"), file("a.b", 1), file(".hidden", 2), file("a-", 3), folder(".git")]);
        let rows: Vec<&str> = html.lines().filter(|l| l.starts_with("<tr><td>")).collect();
        assert_eq!(
            rows,
            [
                "<tr><td><a href=\"../\">../</a></td><td></td></tr>",
                "<tr><td><a href=\"a-\">a-</a></td><td>3</td></tr>",
                "<tr><td><a href=\"a.b\">a.b</a></td><td>1</td></tr>",
                "<tr><td><a href=\"a/\">a/</a></td><td></td></tr>",
            ]
        );
    }

    #[test]
    fn the_root_has_no_parent_link() {
        let html = render("", vec![file("a", 1)]);
        assert!(html.contains("<title>Index of /</title>"), "{html}");
        assert!(!html.contains("../"), "{html}");
    }
}
