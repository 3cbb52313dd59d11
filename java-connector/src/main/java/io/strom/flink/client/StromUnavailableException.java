package io.strom.flink.client;

/** The node cannot be reached or stopped serving (UNAVAILABLE); retriable. */
public class StromUnavailableException extends StromException {
  private static final long serialVersionUID = 1L;

  public StromUnavailableException(String status, String nodeMessage) {
    super(status, nodeMessage);
  }
}
