// core.cacheStats: the metadata-cache hit/miss counters behind curvine_fuse_node_cache_total.
import XCTest
#if canImport(Glibc)
import Glibc
#endif
import CurvineClient
@testable import CurvineFSCore

final class CacheStatsTests: CoreTestCase {
    func config(ttl: Double) -> CoreConfig {
        var c = defaultConfig()
        c.entryTimeout = ttl
        c.attrTimeout = ttl
        c.negativeTimeout = ttl
        return c
    }

    func testLookupHitNegativeAndMiss() throws {
        try remount(config(ttl: 60))
        _ = try mkdir(1, "d")
        let s0 = core.cacheStats
        // mkdir remembered the dentry: answered from the cache.
        _ = try core.lookup(parent: 1, name: "d", ctx: rootCtx)
        // Unknown name: the master is asked, the answer is remembered as a negative entry...
        XCTAssertEqual(try core.lookup(parent: 1, name: "missing", ctx: rootCtx).ino, 0)
        // ...which answers the next lookup.
        XCTAssertEqual(try core.lookup(parent: 1, name: "missing", ctx: rootCtx).ino, 0)
        let s1 = core.cacheStats
        XCTAssertEqual(s1.lookupHit - s0.lookupHit, 1)
        XCTAssertEqual(s1.lookupMiss - s0.lookupMiss, 1)
        XCTAssertEqual(s1.lookupNegative - s0.lookupNegative, 1)
    }

    func testAttrHitAndMiss() throws {
        try remount(config(ttl: 60))
        let d = try mkdir(1, "d")
        let s0 = core.cacheStats
        _ = try core.getattr(ino: d.ino, fh: nil)
        _ = try core.getattr(ino: d.ino, fh: nil)
        let s1 = core.cacheStats
        XCTAssertEqual(s1.attrHit - s0.attrHit, 2)
        XCTAssertEqual(s1.attrMiss, s0.attrMiss)

        try remount(config(ttl: 0))  // nothing stays fresh: every check asks the master
        let e = try core.lookup(parent: 1, name: "d", ctx: rootCtx)
        let s2 = core.cacheStats
        _ = try core.getattr(ino: e.ino, fh: nil)
        let s3 = core.cacheStats
        XCTAssertEqual(s3.attrMiss - s2.attrMiss, 1)
        XCTAssertEqual(s3.attrHit, s2.attrHit)
    }
}
