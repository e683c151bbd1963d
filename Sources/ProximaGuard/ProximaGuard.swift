/// ProximaGuard: the AI edge's pure parts (docs/security.md). Who is calling: HTTP Message
/// Signatures in the Web Bot Auth profile (`Agents/`), known crawlers and declared bots by user agent
/// and forward-confirmed reverse DNS (`Crawlers/`), and the behavioural score of unknown callers; what
/// they send and get: prompt-injection detection and the secrets and personal-data guard, whole and
/// streamed (`Content/`). No networking here: the gateway fetches directories and asks DNS, and passes
/// the answers in.
public enum ProximaGuard {}
