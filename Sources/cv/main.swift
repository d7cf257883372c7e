// cv: a small command-line client over the same library as the mount, like
// upstream's `cv fs`. For users debugging a cluster, and for tests.
import ArgumentParser
import CurvineClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: "Curvine cluster TOML to read [client] master_addrs and timeouts from.")
    var conf: String?

    @Option(name: .long, help: "Master addresses host:port[,host:port]; overrides the config.")
    var masterAddrs: String?

    func client() throws -> CurvineClient {
        var cfg = ClusterConfig()
        if let c = conf ?? ProcessInfo.processInfo.environment["CURVINE_CONF_FILE"].flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) {
            cfg = try ClusterConfig.load(path: c)
            for w in cfg.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        }
        if let m = masterAddrs {
            cfg.client.masterAddrs = try m.split(separator: ",").map { try HostPort.parse(String($0)) }
        } else if conf == nil {
            cfg.client.masterAddrs = [HostPort(host: "127.0.0.1", port: 8995)]
        }
        return try CurvineClient(options: cfg.clientOptions())
    }
}

func fail(_ e: Error) -> Never {
    FileHandle.standardError.write(Data("cv: \(e)\n".utf8))
    if let c = e as? CurvineError { exit(c.errno == ENOENT ? 2 : 1) }
    exit(1)
}

func modeString(_ s: FileStatus) -> String {
    let t: Character = s.kind == .directory ? "d" : s.kind == .symlink ? "l" : "-"
    var out = String(t)
    let bits = "rwxrwxrwx"
    for (i, ch) in bits.enumerated() {
        out.append(s.mode & (0o400 >> UInt32(i)) != 0 ? ch : "-")
    }
    return out
}

func dateString(_ ms: Int64) -> String {
    let f = DateFormatter()
    f.dateFormat = "yyyy-MM-dd HH:mm"
    f.timeZone = TimeZone(identifier: "UTC")
    return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

struct Ls: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a directory (paged, 1000 entries a page).")
    @OptionGroup var cluster: ClusterOptions
    @Argument(help: "Curvine path.") var path: String = "/"
    func run() throws {
        do {
            let c = try cluster.client()
            let st = try c.fileStatus(path)
            if st.kind != .directory {
                print("\(modeString(st)) \(st.nlink) \(st.owner) \(st.group) \(st.length) \(dateString(st.mtimeMs)) \(st.path)")
                return
            }
            var after: String? = nil
            while true {
                let page = try c.listPage(path, startAfter: after, limit: 1000)
                for s in page {
                    let name = s.kind == .symlink ? "\(s.name) -> \(s.target ?? "")" : s.name
                    print("\(modeString(s)) \(s.nlink) \(s.owner) \(s.group) \(s.length) \(dateString(s.mtimeMs)) \(name)")
                }
                if page.count < 1000 { break }
                after = page.last!.name
            }
        } catch { fail(error) }
    }
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a path's status as the master reports it.")
    @OptionGroup var cluster: ClusterOptions
    @Argument var path: String
    func run() throws {
        do {
            let s = try cluster.client().fileStatus(path)
            print("path: \(s.path)\nid: \(s.id)\ntype: \(s.kind)\nlength: \(s.length)\nmode: \(String(s.mode, radix: 8))\nowner: \(s.owner)\ngroup: \(s.group)\nnlink: \(s.nlink)\ncomplete: \(s.isComplete)\nblock_size: \(s.blockSize)\nreplicas: \(s.replicas)\nmtime: \(dateString(s.mtimeMs))")
            if let t = s.target { print("target: \(t)") }
            for k in s.xattrs.keys.sorted() { print("xattr: \(k)") }
        } catch { fail(error) }
    }
}

struct Mkdir: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a directory.")
    @OptionGroup var cluster: ClusterOptions
    @Flag(name: .short, help: "Create missing parents.") var p = false
    @Argument var path: String
    func run() throws {
        do { _ = try cluster.client().mkdir(path, mode: 0o755, owner: "", group: "", createParent: p) } catch { fail(error) }
    }
}

struct Put: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Copy a local file (or - for stdin) into Curvine.")
    @OptionGroup var cluster: ClusterOptions
    @Flag(name: .short, help: "Overwrite an existing file.") var force = false
    @Argument var local: String
    @Argument var path: String
    func run() throws {
        do {
            let fd = local == "-" ? STDIN_FILENO : open(local, O_RDONLY)
            guard fd >= 0 else { throw CurvineError.local(errno, "cannot open \(local): \(String(cString: strerror(errno)))") }
            defer { if fd != STDIN_FILENO { close(fd) } }
            let n = try cluster.client().writeWholeFile(path, options: CreateOptions(overwrite: force, createParent: true)) { buf in
                while true {
                    let r = Glibc.read(fd, buf.baseAddress!, buf.count)
                    if r >= 0 { return r }
                    if errno != EINTR { throw CurvineError.local(errno, "read \(local): \(String(cString: strerror(errno)))") }
                }
            }
            FileHandle.standardError.write(Data("\(n) bytes -> \(path)\n".utf8))
        } catch { fail(error) }
    }
}

struct Cat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a file's bytes to stdout.")
    @OptionGroup var cluster: ClusterOptions
    @Argument var path: String
    func run() throws {
        do {
            try cluster.client().readWholeFile(path) { chunk in
                var off = 0
                while off < chunk.count {
                    let n = write(STDOUT_FILENO, chunk.baseAddress! + off, chunk.count - off)
                    if n < 0 { if errno == EINTR { continue }; throw CurvineError.local(errno, "write to stdout failed") }
                    off += n
                }
            }
        } catch { fail(error) }
    }
}

struct Rm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a file or (with -r) a directory tree.")
    @OptionGroup var cluster: ClusterOptions
    @Flag(name: .short, help: "Recursive.") var r = false
    @Argument var path: String
    func run() throws {
        do { try cluster.client().delete(path, recursive: r) } catch { fail(error) }
    }
}

struct Mv: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rename a path.")
    @OptionGroup var cluster: ClusterOptions
    @Argument var src: String
    @Argument var dst: String
    func run() throws {
        do { try cluster.client().rename(src, to: dst, flags: []) } catch { fail(error) }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cluster capacity, counts and the active master.")
    @OptionGroup var cluster: ClusterOptions
    func run() throws {
        do {
            let i = try cluster.client().filesystemInfo()
            print("active_master: \(i.activeMaster)\ncapacity: \(i.capacity)\navailable: \(i.available)\nfiles: \(i.fileCount)\ndirs: \(i.dirCount)")
            for w in i.liveWorkers { print("worker: \(w.workerId) \(w.hostname) \(w.ipAddr):\(w.rpcPort)") }
        } catch { fail(error) }
    }
}

struct CV: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cv",
        abstract: "Curvine file-system client (the same library as curvine-fuse).",
        discussion: "Talks to the master at --master-addrs, or [client] master_addrs of --conf, or 127.0.0.1:8995.",
        subcommands: [Ls.self, Stat.self, Mkdir.self, Put.self, Cat.self, Rm.self, Mv.self, Info.self])
}

CV.main()
