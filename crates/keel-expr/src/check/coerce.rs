//! Literals and the conversions between operand types: which types compare, and how
//! a string literal becomes the datetime, date, uuid or enum value it is compared with.

use super::*;

pub(super) fn literal(lit: &Literal, span: Span) -> Node {
    let (value, ty) = match lit {
        Literal::Null => (Value::Null, Type::Null),
        Literal::Bool(b) => (Value::Bool(*b), Type::Bool),
        Literal::Int(i) => (Value::Int(*i), Type::Int),
        Literal::Float(f) => (Value::Float(*f), Type::Float),
        Literal::Text(s) => (Value::Text(s.clone()), Type::Text),
    };
    Node::new(NodeKind::Lit(value), ty, span)
}

/// `==` / `!=` / `in` compatibility.
pub(super) fn eq_compatible(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Null, _) | (_, Type::Null) => true,
        _ if a.is_numeric() && b.is_numeric() => true,
        _ if a.is_textual() && b.is_textual() => true,
        (Type::Bool, Type::Bool)
        | (Type::Datetime, Type::Datetime)
        | (Type::Date, Type::Date)
        | (Type::Uuid, Type::Uuid) => true,
        _ => false,
    }
}

/// The element type of a checked list: Float if Int and Float mix, otherwise `anchor`.
pub(super) fn list_element_type(items: &[Node], anchor: Type) -> Type {
    if anchor.is_numeric() && items.iter().any(|n| n.ty == Type::Float) {
        Type::Float
    } else {
        anchor
    }
}

/// Turns a string literal into the Datetime, Date, Uuid or enum value it is compared
/// with; anything else is returned unchanged.
pub(super) fn coerce(node: Node, target: &Type) -> Result<Node, TypeError> {
    if !node.is_text_literal() {
        return Ok(node);
    }
    let NodeKind::Lit(Value::Text(text)) = &node.kind else {
        return Ok(node);
    };
    let span = node.span;
    let value = match target {
        Type::Datetime => parse_datetime(text)
            .map(|t| Value::Datetime(to_utc_micros(t)))
            .ok_or_else(|| {
                TypeError::new(span, format!("`{text}` is not a valid datetime"))
                    .with_hint("write it in RFC 3339 form, e.g. \"2024-01-31T12:00:00Z\"")
            })?,
        Type::Date => parse_date(text).map(Value::Date).ok_or_else(|| {
            TypeError::new(span, format!("`{text}` is not a valid date"))
                .with_hint("write it as YYYY-MM-DD, e.g. \"2024-01-31\"")
        })?,
        Type::Uuid => uuid::Uuid::parse_str(text).map(Value::Uuid).map_err(|_| {
            TypeError::new(span, format!("`{text}` is not a valid UUID")).with_hint(
                "write it as 8-4-4-4-12 hex digits, e.g. \"67e55044-10b1-426f-9247-bb680e5fe0c8\"",
            )
        })?,
        Type::Enum(values) => {
            if !values.iter().any(|v| v == text) {
                return Err(TypeError::new(
                    span,
                    format!("`{text}` is not one of the enum's values"),
                )
                .with_hint(format!("expected one of: {}", values.join(", "))));
            }
            Value::Text(text.clone())
        }
        _ => return Ok(node),
    };
    Ok(Node::new(
        NodeKind::Lit(normalize(value, target)),
        target.clone(),
        span,
    ))
}

/// Coerces whichever side is a string literal to the other side's type.
pub(super) fn coerce_pair(lhs: Node, rhs: Node) -> Result<(Node, Node), TypeError> {
    let lhs = coerce(lhs, &rhs.ty)?;
    let rhs = coerce(rhs, &lhs.ty)?;
    Ok((lhs, rhs))
}
