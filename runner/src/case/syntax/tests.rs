//! The text checks: each kind of error with its offset, path and message; positions in
//! characters; no panic on any prefix or mutation of a valid document.

use super::*;

/// (line, column, path, message) of the error in `src`.
fn fails(src: &str) -> (usize, usize, String, String) {
    let e = check(src).expect_err("the text must be refused");
    let (line, col) = position(src, e.offset);
    (line, col, e.path.to_string(), e.message)
}

fn at(src: &str) -> (usize, usize, String) {
    let (l, c, p, _) = fails(src);
    (l, c, p)
}

const DOC: &str = "{\n  \"a\": [1, -2, {\"b\": null}],\n  \"c\\u00e9\": \"x\\\"\\ud83d\\ude00\",\n  \"d\": {\"e\": true, \"f\": false}\n}\n";

#[test]
fn valid_documents_pass() {
    for src in [
        DOC,
        "0",
        " [] ",
        "{}",
        "\"\"",
        "-9223372036854775808",
        "18446744073709551615",
    ] {
        assert_eq!(check(src), Ok(()), "{src}");
    }
}

#[test]
fn a_repeated_key_is_located_at_its_second_occurrence() {
    let src = "{\"maps\": {\n  \"st\": {},\n  \"st\": {}\n}}";
    assert_eq!(
        fails(src),
        (
            3,
            3,
            "maps.st".into(),
            "duplicate key `st` (first at line 2, column 3): a key may appear once in an object"
                .into()
        )
    );
    // Keys compare unescaped.
    assert_eq!(at(r#"{"x": {"a": 1, "\u0061": 2}}"#), (1, 16, "x.a".into()));
    // The same key in two objects is fine.
    assert_eq!(check(r#"[{"a": 1}, {"a": 2}]"#), Ok(()));
}

#[test]
fn text_after_the_document_is_refused() {
    let (l, c, p, m) = fails("{\"a\": 1} trailing garbage {{{ and a lot more text after it");
    assert_eq!((l, c, p.as_str()), (1, 10, "."));
    assert_eq!(
        m,
        "text after the end of the JSON document: `trailing garbage {{{ and…`"
    );
    assert_eq!(at("{}\n\n}"), (3, 1, ".".into()));
}

#[test]
fn syntax_errors_name_the_value_they_are_in() {
    assert_eq!(
        fails("{\"steps\": [ }"),
        (
            1,
            13,
            "steps[0]".into(),
            "expected a value (an object, list, string, number, true, false or null), found `}`"
                .into()
        )
    );
    let (l, c, p, m) = fails("{\"a\": [1,\n 2,\n ]}");
    assert_eq!(
        (l, c, p.as_str(), m.as_str()),
        (2, 3, "a", "trailing comma: no element follows it")
    );
    let (_, c, p, m) = fails("{\"a\": 1, }");
    assert_eq!(
        (c, p.as_str(), m.as_str()),
        (8, ".", "trailing comma: no member follows it")
    );
    let (_, c, p, m) = fails("{\"a\": {\"b\" 1}}");
    assert_eq!(
        (c, p.as_str(), m.as_str()),
        (12, "a.b", "expected `:` after the key, found `1`")
    );
    let (_, c, p, m) = fails("{\"a\": {1: 2}}");
    assert_eq!((c, p.as_str()), (8, "a"));
    assert_eq!(
        m,
        "expected a key (a string in double quotes) in the object opened at line 1, column 7, found `1`"
    );
    let (_, c, p, m) = fails("{\"a\": [1 2]}");
    assert_eq!((c, p.as_str()), (10, "a"));
    assert!(
        m.starts_with(
            "expected `,` or `]` after an element of the list opened at line 1, column 7"
        ),
        "{m}"
    );
    let (_, c, p, m) = fails("{\"a\": tru}");
    assert_eq!((c, p.as_str()), (7, "a"));
    assert_eq!(
        m,
        "expected a value, found `tru`: the literals are true, false and null"
    );
}

#[test]
fn the_end_of_the_file_is_a_position_too() {
    assert_eq!(
        fails(""),
        (
            1,
            1,
            ".".into(),
            "expected a value (an object, list, string, number, true, false or null), found the end of the file".into()
        )
    );
    assert_eq!(at("{\"a\": [1,\n"), (2, 1, "a[1]".into()));
    let (l, c, p, m) = fails("{\"about\": \"no end");
    assert_eq!((l, c, p.as_str()), (1, 18, "about"));
    assert_eq!(
        m,
        "the file ends inside the string opened at line 1, column 11"
    );
    assert!(fails("{\"a\": 1").3.ends_with("found the end of the file"));
}

#[test]
fn columns_count_characters() {
    // Each `é` is 2 bytes, `😀` 4: the column counts them as one each.
    let src = "{\"é😀\": \"ééé\", }";
    assert_eq!(at(src), (1, 13, ".".into()));
    assert_eq!(at("{\"a\":\n\t\"ü\" x}"), (2, 6, ".".into()));
}

#[test]
fn numbers_are_64_bit_integers_as_written() {
    let (_, c, p, m) = fails("{\"v\": 18446744073709551616}");
    assert_eq!((c, p.as_str()), (7, "v"));
    assert_eq!(
        m,
        "`18446744073709551616` is out of range: integers go from -9223372036854775808 (i64::MIN) to 18446744073709551615 (u64::MAX)"
    );
    assert!(fails("[-9223372036854775809]")
        .3
        .starts_with("`-9223372036854775809` is out of range"));
    for float in ["1.5", "1e3", "2.0", "-0.0", "1E+2"] {
        let m = fails(&format!("[{float}]")).3;
        assert!(
            m.starts_with(&format!("`{float}` is not an integer: ")),
            "{m}"
        );
    }
    assert_eq!(fails("[01]").3, "invalid number `01`: no leading zeros");
    assert_eq!(
        fails("[-]").3,
        "invalid number `-`: a digit must follow `-`"
    );
    assert_eq!(
        fails("[1.]").3,
        "invalid number `1.`: a digit must follow `.`"
    );
    assert_eq!(
        fails("[1e]").3,
        "invalid number `1e`: a digit must follow the exponent"
    );
}

#[test]
fn strings_are_checked_as_json_strings() {
    let m = fails("[\"a\tb\"]").3;
    assert!(m.starts_with("control character U+0009 in a string"), "{m}");
    assert_eq!(at("[\"a\\qb\"]"), (1, 4, "[0]".into()));
    assert!(fails("[\"\\u12\"]").3.starts_with("invalid \\u escape"));
    assert!(fails("[\"\\ud800\"]")
        .3
        .starts_with("lone surrogate `\\ud800`"));
    assert!(fails("[\"\\udc00\\ud800\"]")
        .3
        .starts_with("lone surrogate `\\udc00`"));
    assert!(fails("[\"\\ud800\\u0041\"]")
        .3
        .starts_with("lone surrogate"));
    assert_eq!(check("[\"\\ud83d\\ude00 \\u0000 \\/\"]"), Ok(()));
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert_eq!(check(&ok), Ok(()));
    let deep = "[".repeat(MAX_DEPTH + 1);
    let (_, c, _, m) = fails(&deep);
    assert_eq!(
        (c, m.as_str()),
        (MAX_DEPTH + 1, "nested deeper than 64 levels")
    );
    // Far deeper input is refused as quickly, without recursing.
    assert!(check(&"[{\"a\":".repeat(100_000)).is_err());
}

#[test]
fn invalid_utf8_is_located_at_its_first_bad_byte() {
    let src = b"{\n  \"about\": \"d\xc3\xa9j\xff\"\n}";
    let e = utf8(src).expect_err("not UTF-8");
    let before = std::str::from_utf8(&src[..e.offset]).unwrap();
    assert_eq!(position(before, e.offset), (2, 16));
    assert_eq!(e.path.to_string(), "about");
    assert_eq!(
        e.message,
        "invalid UTF-8: byte 0xff; a case file is UTF-8 text"
    );
    // In a key: the object's path. After the document: the root.
    assert_eq!(
        utf8(b"{\"a\": {\"\xfe\": 1}}")
            .unwrap_err()
            .path
            .to_string(),
        "a"
    );
    assert_eq!(utf8(b"{} \x80").unwrap_err().path.to_string(), ".");
    let cut = utf8(b"[\"\xe2\x82").unwrap_err();
    assert_eq!((cut.offset, cut.path.to_string()), (2, "[0]".to_string()));
    assert!(
        cut.message.contains("ends inside a character"),
        "{}",
        cut.message
    );
    assert_eq!(utf8("{\"é\": 1}".as_bytes()), Ok("{\"é\": 1}"));
}

#[test]
fn no_prefix_or_mutation_panics() {
    for i in 0..DOC.trim_end().len() {
        if let Some(pre) = DOC.get(..i) {
            assert!(check(pre).is_err(), "{pre:?}");
        }
    }
    let bytes = DOC.as_bytes();
    for at in 0..bytes.len() {
        for b in b"{}[]:,\"\\0-.eu \xff" {
            let mut m = bytes.to_vec();
            m[at] = *b;
            if let Ok(s) = utf8(&m) {
                let _ = check(s);
            }
        }
    }
}
