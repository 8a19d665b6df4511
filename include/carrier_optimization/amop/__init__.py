"""The AMOP database: schema, repositories (all SQL lives here), bulk inserts, checkpoint stores."""
