package io.strom.flink.client;

/** The database, table or partition does not exist (NOT_FOUND). */
public class StromNotFoundException extends StromException {
  private static final long serialVersionUID = 1L;

  public StromNotFoundException(String status, String nodeMessage) {
    super(status, nodeMessage);
  }
}
