/// What the engine model reports as it advances: first tokens, optionally every later token, and
/// finished requests with their prompt-cache savings.
public enum EngineEvent: Sendable, Equatable {
    /// The request's first output token (index 0), emitted at the end of the step its prefill completed in.
    case firstToken(id: Int, at: Double)
    /// A later output token (`index` counts from 0). Only reported when the engine model was created
    /// with `reportsEveryToken`, since long simulations would otherwise produce one event per token.
    case token(id: Int, index: Int, at: Double)
    /// The request generated its last token; `cachedPromptTokens` of its prompt came from the prefix cache.
    case finished(id: Int, at: Double, promptTokens: Int, outputTokens: Int, cachedPromptTokens: Int)

    public var id: Int {
        switch self {
        case .firstToken(let id, _), .token(let id, _, _), .finished(let id, _, _, _, _): id
        }
    }

    public var time: Double {
        switch self {
        case .firstToken(_, let time), .token(_, _, let time), .finished(_, let time, _, _, _): time
        }
    }
}
