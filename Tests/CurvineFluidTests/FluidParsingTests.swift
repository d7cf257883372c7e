// The small building blocks: JSON reader, TOML writer, shell quoting, mountinfo.

import XCTest
@testable import CurvineFluid

final class FluidParsingTests: XCTestCase {
    // MARK: - JSON

    func testJSONValues() throws {
        XCTAssertEqual(try FluidJSONParser.parse(#"{"a":[true,false,null,0,-1.5e+3,"x"],"b":{}}"#),
                       .object(["a": .array([.bool(true), .bool(false), .null, .number("0"), .number("-1.5e+3"),
                                             .string("x")]), "b": .object([:])]))
        XCTAssertEqual(try FluidJSONParser.parse(#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#),
                       .string("\"\\/\u{08}\u{0C}\n\r\té😀"))
        XCTAssertEqual(try FluidJSONParser.parse(#"{"k":1,"k":2}"#), .object(["k": .number("2")]))
        XCTAssertEqual(try FluidJSONParser.parse("1.0"), .number("1.0"))
    }

    func testJSONErrorsHavePositions() {
        let cases: [(String, String)] = [
            ("{\"a\":1,}", "expected a quoted key, found '}' at line 1, column 8"),
            ("[1 2]", "expected ',' or ']' in list, found '2' at line 1, column 4"),
            ("{\n  \"a\": tru\n}", "unexpected 't' at line 2, column 8"),
            ("01", "number with a leading zero at line 1, column 2"),
            ("\"abc", "unterminated string at line 1, column 1"),
            ("\"\\ud800\"", "lone UTF-16 high surrogate \\ud800 at line 1, column 8"),
            ("{} x", "unexpected 'x' after the JSON value at line 1, column 4"),
            ("\"a\tb\"", "control character U+09 inside a string (escape it) at line 1, column 3"),
            (String(repeating: "[", count: 100), "nesting deeper than 64 levels at line 1, column 65"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try FluidJSONParser.parse(text), text) { error in
                XCTAssertEqual("\(error)", message, text)
            }
        }
    }

    // MARK: - TOML

    func testTOMLRendering() {
        let document = FluidTOMLDocument(
            root: [("a", .bool(true)), ("weird key", .string("x"))],
            sections: [FluidTOMLSection(.table, ["t"], [("n", .integer(-4)), ("f", .float(2)), ("g", .float(1e-5))]),
                       FluidTOMLSection(.arrayOfTables, ["t", "list"], [("s", .string("q\"b\\n\n\u{1}\u{7F}é"))])])
        XCTAssertEqual(document.render(), """
            a = true
            "weird key" = "x"

            [t]
            n = -4
            f = 2.0
            g = 1e-05

            [[t.list]]
            s = "q\\"b\\\\n\\n\\u0001\\u007Fé"

            """)
        XCTAssertEqual(FluidTOMLDocument().render(), "")
        XCTAssertEqual(FluidTOMLValue.float(.infinity).rendered, "inf")
    }

    func testTOMLOutputParsesWithAnIndependentReader() throws {
        try assertValidTOML(FluidTOMLDocument(
            root: [("s", .string("tab\there \"q\" \\ \u{0}"))],
            sections: [FluidTOMLSection(.table, ["x"], [("f", .float(1e20)), ("g", .float(0.1))])]).render())
    }

    // MARK: - Shell quoting

    func testShellQuote() {
        XCTAssertEqual(FluidShellQuote.quote("/usr/bin/x"), "/usr/bin/x")
        XCTAssertEqual(FluidShellQuote.quote("a=b,c:d@e%f+g"), "a=b,c:d@e%f+g")
        XCTAssertEqual(FluidShellQuote.quote(""), "''")
        XCTAssertEqual(FluidShellQuote.quote("a b"), "'a b'")
        XCTAssertEqual(FluidShellQuote.quote("it's"), "'it'\\''s'")
        XCTAssertEqual(FluidShellQuote.quote("$HOME"), "'$HOME'")
        XCTAssertEqual(FluidShellQuote.join(["echo", "a b", "c"]), "echo 'a b' c")
    }

    // MARK: - mountinfo

    func testMountInfoParsing() {
        let text = """
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
            36 22 0:52 / /mnt/with\\040space rw,nosuid shared:7 master:2 - fuse.curvinefs curvine rw,user_id=0
            37 22 0:53 / /mnt/plain rw - fuse.curvinefs curvine rw
            38 37 0:54 / /mnt/plain rw - fuse.curvinefs curvine rw
            garbage line
            """
        XCTAssertEqual(FluidMountTable.entries(at: "/mnt/with space", in: text),
                       [FluidMountEntry(mountPoint: "/mnt/with space", fsType: "fuse.curvinefs", source: "curvine")])
        XCTAssertEqual(FluidMountTable.entries(at: "/mnt/plain", in: text).count, 2, "stacked mounts")
        XCTAssertEqual(FluidMountTable.entries(at: "/mnt", in: text), [])
        XCTAssertEqual(FluidMountTable.parse(text).count, 4)
        XCTAssertEqual(FluidMountTable.unescape("a\\134b\\011c\\12"), "a\\b\tc\\12")
    }
}
