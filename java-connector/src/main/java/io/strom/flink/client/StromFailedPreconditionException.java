package io.strom.flink.client;

/** The node is not in the state the request needs: a sequence gap, the wrong table kind, another contract version (FAILED_PRECONDITION). */
public class StromFailedPreconditionException extends StromException {
  private static final long serialVersionUID = 1L;

  public StromFailedPreconditionException(String status, String nodeMessage) {
    super(status, nodeMessage);
  }
}
