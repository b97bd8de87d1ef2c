//! Guidance texts: Markdown (from a file or inline) rendered to HTML for the interstitial.
//! Raw HTML in the Markdown is shown as text, never as markup.

use pulldown_cmark::{html, Event, Options, Parser};

/// Renders Markdown to HTML with any raw HTML escaped.
pub fn render(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
    )
    .map(|event| match event {
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

/// Does a `guidance` value name a file rather than hold the text itself?
pub fn is_file_reference(value: &str) -> bool {
    !value.contains('\n')
        && [".md", ".markdown", ".txt"]
            .iter()
            .any(|ext| value.to_ascii_lowercase().ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_raw_html_is_escaped() {
        let html = render("**Think** before you post.\n\n<script>alert(1)</script>\n\n- one\n");
        assert!(html.contains("<strong>Think</strong>"));
        assert!(html.contains("<li>one</li>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        let inline = render("a <img src=x onerror=alert(1)> b");
        assert!(!inline.contains("<img"), "{inline}");
    }

    #[test]
    fn file_references() {
        assert!(is_file_reference("assets/guidance/social.md"));
        assert!(!is_file_reference("Please be careful."));
    }
}
