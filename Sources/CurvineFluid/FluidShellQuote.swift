// POSIX shell quoting for the `# exec: ` line of --dry-run (CONTRACT §11).

import Foundation

enum FluidShellQuote {
    /// A word the shell reads back as exactly `word`: left bare when it only holds
    /// characters no shell treats specially, otherwise wrapped in single quotes with
    /// each `'` written as `'\''`.
    static func quote(_ word: String) -> String {
        let safe = !word.isEmpty && word.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "-", "_", ".", "/", ":", ",", "+", "@", "%", "=": return true
            default: return false
            }
        }
        if safe { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The words quoted and joined by single spaces.
    static func join(_ words: [String]) -> String {
        words.map(quote).joined(separator: " ")
    }
}
