//! `--format html`: the document as one self-contained page. The Markdown this crate
//! writes uses a small subset (headings, paragraphs, lists, tables, fenced code,
//! block quotes, `code` and **bold**), so a small converter renders it; Mermaid
//! blocks are drawn in the browser by the vendored `mermaid.min.js`, inlined, so
//! nothing is fetched when the page is opened.

/// Mermaid 11.17.2 (MIT), from the npm registry; see assets/mermaid.LICENSE.
const MERMAID: &str = include_str!("../assets/mermaid.min.js");

pub fn render(title: &str, markdown: &str) -> String {
    let body = to_html(markdown);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n<script>\n{MERMAID}\n</script>\n<script>\nmermaid.initialize({{startOnLoad: true, securityLevel: \"strict\", theme: \"neutral\"}});\n</script>\n</body>\n</html>\n",
        escape(title)
    )
}

const CSS: &str = "body{font:16px/1.55 system-ui,sans-serif;margin:0;color:#1d232a;background:#fff}\n\
main{max-width:1100px;margin:0 auto;padding:2rem}\n\
h1,h2,h3,h4{line-height:1.25}h2{border-bottom:1px solid #d8dee4;padding-bottom:.3rem;margin-top:2.5rem}\n\
code{font:13px ui-monospace,monospace;background:#f3f5f7;padding:.1rem .3rem;border-radius:3px}\n\
pre{background:#f6f8fa;padding:1rem;overflow:auto;border-radius:6px}pre code{background:none;padding:0}\n\
pre.mermaid{background:#fff;text-align:center}\n\
table{border-collapse:collapse;margin:1rem 0;font-size:14px}td,th{border:1px solid #d8dee4;padding:.35rem .6rem;vertical-align:top;text-align:left}\n\
blockquote{color:#57606a;border-left:4px solid #d8dee4;margin:0;padding:0 1rem}\n";

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn inline(s: &str) -> String {
    let mut out = String::new();
    // Split on backticks: odd parts are code.
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(part));
            out.push_str("</code>");
        } else {
            let e = escape(part).replace("&lt;br&gt;", "<br>");
            let mut bold = false;
            let mut rest = e.as_str();
            while let Some(at) = rest.find("**") {
                out.push_str(&rest[..at]);
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
                rest = &rest[at + 2..];
            }
            out.push_str(rest);
            if bold {
                out.push_str("</strong>");
            }
        }
    }
    out
}

fn heading_id(text: &str) -> String {
    text.chars()
        .filter_map(|c| {
            if c.is_ascii_alphanumeric() {
                Some(c.to_ascii_lowercase())
            } else if c == ' ' || c == '-' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

fn to_html(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            out.push_str("<p>");
            out.push_str(&inline(&para.join(" ")));
            out.push_str("</p>\n");
            para.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i];
        if let Some(lang) = line.strip_prefix("```") {
            flush(&mut para, &mut out);
            let mut code = String::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                code.push_str(lines[i]);
                code.push('\n');
                i += 1;
            }
            if lang == "mermaid" {
                out.push_str("<pre class=\"mermaid\">\n");
                out.push_str(&escape(&code));
                out.push_str("</pre>\n");
            } else {
                out.push_str(&format!("<pre><code class=\"language-{}\">", escape(lang)));
                out.push_str(&escape(&code));
                out.push_str("</code></pre>\n");
            }
        } else if line.starts_with('#') {
            flush(&mut para, &mut out);
            let level = line.chars().take_while(|c| *c == '#').count().min(6);
            let text = line[level..].trim();
            out.push_str(&format!(
                "<h{level} id=\"{}\">{}</h{level}>\n",
                heading_id(text),
                inline(text)
            ));
        } else if line.starts_with('|') {
            flush(&mut para, &mut out);
            out.push_str("<table>\n");
            let mut first = true;
            while i < lines.len() && lines[i].starts_with('|') {
                let row = lines[i];
                if row.starts_with("|---") {
                    i += 1;
                    continue;
                }
                let cells = split_row(row);
                let tag = if first { "th" } else { "td" };
                out.push_str("<tr>");
                for c in cells {
                    out.push_str(&format!("<{tag}>{}</{tag}>", inline(c.trim())));
                }
                out.push_str("</tr>\n");
                first = false;
                i += 1;
            }
            out.push_str("</table>\n");
            continue;
        } else if line.starts_with("- ") {
            flush(&mut para, &mut out);
            out.push_str("<ul>\n");
            while i < lines.len() && lines[i].starts_with("- ") {
                out.push_str(&format!("<li>{}</li>\n", inline(&lines[i][2..])));
                i += 1;
            }
            out.push_str("</ul>\n");
            continue;
        } else if let Some(q) = line.strip_prefix("> ") {
            flush(&mut para, &mut out);
            out.push_str(&format!("<blockquote><p>{}</p></blockquote>\n", inline(q)));
        } else if line.trim().is_empty() {
            flush(&mut para, &mut out);
        } else {
            para.push(line);
        }
        i += 1;
    }
    flush(&mut para, &mut out);
    out
}

/// Cells of a table row; `\|` is a literal bar.
fn split_row(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'|') {
            cur.push('|');
            chars.next();
        } else if c == '|' {
            cells.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    cells.push(cur);
    cells
}
