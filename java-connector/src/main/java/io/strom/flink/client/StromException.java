package io.strom.flink.client;

/**
 * A failure reported by Strom: the node refused or failed a request, or the Rust client could
 * not reach it. Carries the gRPC status name ({@code NOT_FOUND}, {@code INVALID_ARGUMENT}, ...)
 * and the node's message, which names the table, column or option at fault.
 *
 * <p>Subclasses exist for the statuses callers act on; any other status is a plain {@code
 * StromException}. The native bridge constructs these through the {@code (String, String)}
 * constructor, so every subclass must keep it.
 */
public class StromException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final String status;
  private final String nodeMessage;

  public StromException(String status, String nodeMessage) {
    super(status + ": " + nodeMessage);
    this.status = status;
    this.nodeMessage = nodeMessage;
  }

  /** The canonical gRPC status name, e.g. {@code NOT_FOUND}. */
  public String status() {
    return status;
  }

  /** The node's (or client's) message without the status prefix. */
  public String nodeMessage() {
    return nodeMessage;
  }

  /**
   * Whether sending the same request again may succeed (the node's transient statuses and
   * transport failures); everything else needs a change first.
   */
  public boolean isRetriable() {
    switch (status) {
      case "UNAVAILABLE":
      case "UNKNOWN":
      case "CANCELLED":
      case "DEADLINE_EXCEEDED":
      case "ABORTED":
        return true;
      default:
        return false;
    }
  }

  /** The exception for a status, as the bridge maps it (kept equal to errors.rs). */
  public static StromException of(String status, String nodeMessage) {
    switch (status) {
      case "NOT_FOUND":
        return new StromNotFoundException(status, nodeMessage);
      case "INVALID_ARGUMENT":
        return new StromInvalidArgumentException(status, nodeMessage);
      case "ALREADY_EXISTS":
        return new StromAlreadyExistsException(status, nodeMessage);
      case "FAILED_PRECONDITION":
        return new StromFailedPreconditionException(status, nodeMessage);
      case "DATA_LOSS":
        return new StromDataLossException(status, nodeMessage);
      case "UNAVAILABLE":
        return new StromUnavailableException(status, nodeMessage);
      default:
        return new StromException(status, nodeMessage);
    }
  }
}
