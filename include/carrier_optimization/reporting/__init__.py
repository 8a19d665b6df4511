"""Results: the report workbook and files, the sessions view, the e-mails."""
