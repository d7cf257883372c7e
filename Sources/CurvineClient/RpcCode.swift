// RPC codes (PROTOCOL.md §5): a signed byte in every frame, echoed in the response.
// Only the FUSE subset and the codes a compatible server must recognise are named.
public enum RpcCode: Int8, Sendable, CaseIterable {
    case undefined = 0
    case heartbeat = 1
    case mkdir = 2
    case delete = 3
    case createFile = 4
    case openFile = 5
    case appendFile = 6
    case fileStatus = 7
    case listStatus = 8
    case exists = 9
    case rename = 10
    case addBlock = 11
    case completeFile = 12
    case getBlockLocations = 13
    case getFilesystemInfo = 14
    case setAttr = 15
    case symlink = 16
    case link = 17
    case resizeFile = 18
    case getLock = 20
    case setLock = 21
    case free = 26
    case listOptions = 27
    case getMountInfo = 34
    case writeBlock = 80
    case readBlock = 81
}
