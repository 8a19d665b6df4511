"""The AMOP schema, defined once as SQLAlchemy Core metadata for SQLite and PostgreSQL.

Table and column names follow the legacy AMOP database (docs/architecture.md) so that
the same SQL runs against it on SQL Server, where the existing tables are used and nothing is created.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    inspect,
)
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.statuses import OptimizationStatus, StatusId

metadata = MetaData()

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; BIGINT elsewhere, as in AMOP.
BigId = BigInteger().with_variant(Integer, "sqlite")
Money = Numeric(18, 4)
CREATED_BY = "carrier_optimization"
# Marks the tables and columns the product adds to the legacy AMOP schema: on SQL Server they come from
# sql/mssql_migration.sql, generated from these marks by ``python -m scripts.mssql_migration``.
ADDED = {"added": True}


FINISHED_STATUSES = (
    OptimizationStatus.CleaningUp,
    OptimizationStatus.CompleteWithSuccess,
    OptimizationStatus.CompleteWithErrors,
)


def _audit() -> list[Column]:
    return [
        Column("CreatedBy", String(100), nullable=False, default=CREATED_BY),
        Column("CreatedDate", DateTime, nullable=False, server_default=func.current_timestamp()),
    ]


optimization_status = Table(
    "OptimizationStatus",
    metadata,
    Column("Id", Integer, primary_key=True, autoincrement=False),
    Column("Name", String(50), nullable=False, unique=True),
)

integration = Table(
    "Integration",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("Name", String(50), nullable=False),
    Column("PortalTypeId", Integer, nullable=False, default=0),
)

service_provider = Table(
    "ServiceProvider",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("IntegrationId", Integer, ForeignKey("Integration.id"), nullable=False),
    Column("TenantId", Integer, nullable=True),
    Column("Name", String(100), nullable=False),
    Column("DisplayName", String(100), nullable=False),
    Column("UsesProration", Boolean, nullable=False, default=False),
    Column("OptimizationStartHourLocalTime", Integer, nullable=True),
    Column("IntegrationAuthenticationId", Integer, nullable=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
)

billing_period = Table(
    "BillingPeriod",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ServiceProviderId", Integer, ForeignKey("ServiceProvider.id"), nullable=False),
    Column("BillYear", Integer, nullable=False),
    Column("BillMonth", Integer, nullable=False),
    Column("BillingCycleStartDate", DateTime, nullable=False),
    Column("BillingCycleEndDate", DateTime, nullable=False),
    Column("BillPeriodEndDay", Integer, nullable=True),
    Column("BillPeriodEndHour", Integer, nullable=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
)

carrier_rate_plan = Table(
    "JasperCarrierRatePlan",
    metadata,
    Column("Id", Integer, primary_key=True, autoincrement=False),
    Column("ServiceProviderId", Integer, ForeignKey("ServiceProvider.id"), nullable=False),
    Column("RatePlanCode", String(100), nullable=False),
    Column("DisplayRate", Money, nullable=False),
    Column("PlanMB", Float, nullable=False),
    Column("OverageRateCost", Money, nullable=False),
    Column("DataPerOverageCharge", Float, nullable=False),
    Column("AllowsSimPooling", Boolean, nullable=False, default=False),
    Column("BaseRatePerMB", Money, nullable=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    Column("IsRetired", Boolean, nullable=False, default=False),
    *_audit(),
)

# The legacy view ``vwJasperCommPlan_RatePlan`` exposes ``RatePlanIds`` as a comma-separated string;
# here the string is a column of the comm plan, read through the same column names.
communication_plan = Table(
    "JasperCommunicationPlan",
    metadata,
    Column("Id", Integer, primary_key=True),
    Column("ServiceProviderId", Integer, ForeignKey("ServiceProvider.id"), nullable=False),
    Column("CommunicationPlanName", String(200), nullable=False),
    Column("AliasName", String(200), nullable=True),
    Column("RatePlanIds", String(2000), nullable=False, default=""),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    UniqueConstraint("ServiceProviderId", "CommunicationPlanName"),
)

device = Table(
    "Device",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("TenantId", Integer, nullable=False),
    Column("ServiceProviderId", Integer, ForeignKey("ServiceProvider.id"), nullable=False),
    Column("ICCID", String(30), nullable=False),
    Column("MSISDN", String(30), nullable=True),
    Column("Status", String(30), nullable=False, default="ACTIVATED"),
    Column("CommunicationPlan", String(200), nullable=True),
    Column("CarrierRatePlanId", Integer, nullable=True),
    Column("CarrierRatePlanCode", String(100), nullable=True),
    Column("CtdDataUsage", BigInteger, nullable=False, default=0),
    Column("UsageDate", DateTime, nullable=True),
    Column("SmsUsage", BigInteger, nullable=False, default=0),
    Column("ProviderDateActivated", DateTime, nullable=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    Column("ModifiedDate", DateTime, nullable=True),
    UniqueConstraint("ServiceProviderId", "ICCID"),
)

optimization_session = Table(
    "OptimizationSession",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("SessionGuid", String(36), nullable=False, unique=True),
    Column("TenantId", Integer, nullable=False),
    Column("ServiceProviderId", Integer, nullable=True),
    Column("BillingPeriodId", Integer, nullable=True),
    Column("OptimizationTypeId", Integer, nullable=False, default=0),
    Column("IsActive", Boolean, nullable=False, default=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    Column("Progress", Integer, nullable=False, default=0, info=ADDED),
    Column("ErrorMessage", Text, nullable=True, info=ADDED),
    # Our addition: the Airflow run that opened the session, so a retried task finds it again.
    Column("AirflowRunId", String(250), nullable=True, unique=True, info=ADDED),
    *_audit(),
    Index("ix_OptimizationSession_Tenant", "TenantId", "CreatedDate"),
)

optimization_instance = Table(
    "OptimizationInstance",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("RunStatusId", StatusId, ForeignKey("OptimizationStatus.Id"), nullable=False),
    Column("RunStartTime", DateTime, nullable=True),
    Column("RunEndTime", DateTime, nullable=True),
    Column("BillingPeriodStartDate", DateTime, nullable=False),
    Column("BillingPeriodEndDate", DateTime, nullable=False),
    Column("OptimizationBillingPeriodId", Integer, nullable=True),
    Column("UseBillInAdvance", Boolean, nullable=False, default=False),
    Column("ServiceProviderId", Integer, nullable=True),
    Column("ServiceProviderIds", String(200), nullable=True),
    Column("TenantId", Integer, nullable=False),
    Column("PortalTypeId", Integer, nullable=False, default=0),
    Column("OptimizationSessionId", BigInteger, ForeignKey("OptimizationSession.Id"), nullable=False),
    Column("IntegrationAuthenticationId", Integer, nullable=True),
    Column("RevCustomerId", String(36), nullable=True),
    Column("AMOPCustomerId", Integer, nullable=True),
    Column("SqsMessageId", String(100), nullable=True),
    Column("DeviceCount", Integer, nullable=False, default=0, info=ADDED),
    Column("ErrorMessage", Text, nullable=True, info=ADDED),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    *_audit(),
    UniqueConstraint("OptimizationSessionId", "ServiceProviderId", "PortalTypeId"),
)

comm_group = Table(
    "OptimizationCommGroup",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("InstanceId", BigInteger, ForeignKey("OptimizationInstance.Id"), nullable=False),
    Column("RatePlanIds", String(2000), nullable=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    *_audit(),
    UniqueConstraint("InstanceId", "RatePlanIds"),
)

comm_group_comm_plan = Table(
    "OptimizationCommGroup_CommPlan",
    metadata,
    Column("InstanceId", BigInteger, nullable=False),
    Column("CommGroupId", BigInteger, ForeignKey("OptimizationCommGroup.Id"), primary_key=True),
    Column("CommPlanId", Integer, primary_key=True),
    *_audit(),
)

comm_group_rate_plan = Table(
    "OptimizationCommGroup_RatePlan",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("InstanceId", BigInteger, nullable=False),
    Column("CommGroupId", BigInteger, ForeignKey("OptimizationCommGroup.Id"), nullable=False),
    Column("CarrierRatePlanId", Integer, nullable=True),
    Column("CustomerRatePlanId", Integer, nullable=True),
    Column("MaxAvgUsage", Float, nullable=True),
    *_audit(),
    UniqueConstraint("CommGroupId", "CarrierRatePlanId"),
)

optimization_queue = Table(
    "OptimizationQueue",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("InstanceId", BigInteger, ForeignKey("OptimizationInstance.Id"), nullable=False),
    Column("CommPlanGroupId", BigInteger, ForeignKey("OptimizationCommGroup.Id"), nullable=False),
    Column("RunStatusId", StatusId, ForeignKey("OptimizationStatus.Id"), nullable=False),
    Column("ServiceProviderId", Integer, nullable=True),
    Column("UsesProration", Boolean, nullable=False, default=False),
    Column("IsBillInAdvance", Boolean, nullable=False, default=False),
    # Which candidate the queue evaluates: "base", "engine" or "sequence" (with its index).
    Column("QueueKind", String(20), nullable=False, default="sequence", info=ADDED),
    Column("SequenceIndex", Integer, nullable=True, info=ADDED),
    Column("RunStartTime", DateTime, nullable=True),
    Column("RunEndTime", DateTime, nullable=True),
    Column("SqsMessageId", String(100), nullable=True),
    Column("TotalCost", Money, nullable=True),
    Column("TotalBaseRateAmt", Money, nullable=True),
    Column("TotalRateChargeAmt", Money, nullable=True),
    Column("TotalOverageChargeAmt", Money, nullable=True),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    *_audit(),
    UniqueConstraint("CommPlanGroupId", "QueueKind", "SequenceIndex", name="uq_OptimizationQueue_candidate"),
    Index("ix_OptimizationQueue_Group", "CommPlanGroupId", "RunStatusId"),
)

queue_rate_plan = Table(
    "OptimizationQueue_RatePlan",
    metadata,
    Column("QueueId", BigInteger, ForeignKey("OptimizationQueue.Id"), primary_key=True),
    Column("SequenceOrder", Integer, primary_key=True),
    Column(
        "CommGroup_RatePlanId", BigInteger, ForeignKey("OptimizationCommGroup_RatePlan.Id"), nullable=False
    ),
    *_audit(),
)

optimization_device = Table(
    "OptimizationDevice",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("InstanceId", BigInteger, ForeignKey("OptimizationInstance.Id"), nullable=False),
    Column("DeviceId", BigInteger, nullable=True),
    Column("AmopDeviceId", BigInteger, nullable=False),
    Column("ServiceProviderId", Integer, nullable=True),
    Column("CycleDataUsageMB", Float, nullable=False, default=0.0),
    Column("ProjectedDataUsageMB", Float, nullable=False, default=0.0),
    Column("UsageDate", DateTime, nullable=True),
    Column("SmsUsage", BigInteger, nullable=False, default=0),
    Column("CommunicationPlan", String(200), nullable=True),
    Column("MSISDN", String(30), nullable=True),
    Column("ICCID", String(30), nullable=False),
    Column("DateActivated", DateTime, nullable=True),
    Column("WasActivatedInThisBillingPeriod", Boolean, nullable=False, default=False),
    Column("DaysActivatedInBillingPeriod", Integer, nullable=False, default=0),
    Column("AutoChangeRatePlan", Boolean, nullable=False, default=True),
    Column("OptimizationCommGroupId", BigInteger, nullable=True),
    Column("RatePlanCode", String(100), nullable=True),
    Column("CurrentCarrierRatePlanId", Integer, nullable=True),
    *_audit(),
    UniqueConstraint("InstanceId", "AmopDeviceId"),
    Index("ix_OptimizationDevice_Group", "InstanceId", "OptimizationCommGroupId"),
)


def _device_result(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("Id", BigId, primary_key=True),
        Column("QueueId", BigInteger, nullable=False),
        Column("DeviceId", BigInteger, nullable=True),
        Column("AmopDeviceId", BigInteger, nullable=False),
        Column("BillingPeriodId", Integer, nullable=True),
        Column("UsageMB", Float, nullable=False, default=0.0),
        Column("SmsUsage", BigInteger, nullable=False, default=0),
        Column("AssignedCarrierRatePlanId", Integer, nullable=True),
        Column("AssignedCustomerRatePlanId", Integer, nullable=True),
        Column("CustomerRatePoolId", Integer, nullable=True),
        Column("ChargeAmt", Money, nullable=False, default=0),
        Column("BaseRateAmt", Money, nullable=False, default=0),
        Column("RateChargeAmt", Money, nullable=False, default=0),
        Column("OverageChargeAmt", Money, nullable=False, default=0),
        Column("SmsChargeAmount", Money, nullable=False, default=0),
        *_audit(),
        UniqueConstraint("QueueId", "AmopDeviceId", name=f"uq_{name}_queue_device"),
    )


device_result_staging = _device_result("OptimizationDeviceResultStaging")
device_result = _device_result("OptimizationDeviceResult")

instance_result_file = Table(
    "OptimizationInstanceResultFile",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("InstanceId", BigInteger, ForeignKey("OptimizationInstance.Id"), nullable=False),
    Column("AssignmentXlsxBytes", LargeBinary, nullable=False),
    # Our addition: which file the row holds (device_assignments.xlsx, or .csv.gz above Excel's row
    # limit); NULL is the xlsx, as the legacy rows are.
    Column("FileName", String(200), nullable=True, info=ADDED),
    Column("IsDeleted", Boolean, nullable=False, default=False),
    *_audit(),
)

# Our addition: per comm group figures the legacy tables do not hold (cost before, bound, gap, winner).
comm_group_summary = Table(
    "OptimizationCommGroupSummary",
    metadata,
    Column("CommGroupId", BigInteger, ForeignKey("OptimizationCommGroup.Id"), primary_key=True),
    Column("InstanceId", BigInteger, ForeignKey("OptimizationInstance.Id"), nullable=False),
    Column("DeviceCount", Integer, nullable=False, default=0),
    Column("PlanCount", Integer, nullable=False, default=0),
    Column("SequenceCount", Integer, nullable=False, default=0),
    Column("CurrentCost", Money, nullable=True),
    Column("BaseCost", Money, nullable=True),
    Column("EngineCost", Money, nullable=True),
    Column("LowerBound", Money, nullable=True),
    Column("EngineSeconds", Float, nullable=True),
    Column("PoolPrices", Text, nullable=True),
    Column("WinnerQueueId", BigInteger, nullable=True),
    Column("WinnerKind", String(20), nullable=True),
    Column("WinnerCost", Money, nullable=True),
    Column("PlanChanges", Integer, nullable=True),
    *_audit(),
    info=ADDED,
)

# Checkpoint fallback when Redis is absent or down (docs/architecture.md).
checkpoint = Table(
    "OptimizationCheckpoint",
    metadata,
    Column("CheckpointKey", String(400), primary_key=True),
    Column("Value", Text, nullable=False),
    Column("ExpiresAt", DateTime, nullable=True),
    Column("UpdatedDate", DateTime, nullable=False, server_default=func.current_timestamp()),
    info=ADDED,
)

# Our additions for the event-driven run model (docs/architecture.md):
# every SQS request a run took, by MessageId, so a redelivered copy never starts a second run;
processed_message = Table(
    "AirflowProcessedMessage",
    metadata,
    Column("MessageId", String(100), primary_key=True),
    Column("QueueName", String(400), nullable=False),
    Column("TenantId", Integer, nullable=False),
    Column("ServiceProviderId", Integer, nullable=True),
    Column("BillingPeriodId", Integer, nullable=True),
    Column("OptimizationSessionId", BigInteger, nullable=True),
    Column("AirflowRunId", String(250), nullable=False),
    Column("ReceivedDate", DateTime, nullable=False, server_default=func.current_timestamp()),
)

# and each request the scheduled window published (the legacy IsTimeToRun decision written down).
schedule_decision = Table(
    "AirflowScheduleDecision",
    metadata,
    Column("Id", BigId, primary_key=True),
    Column("TenantId", Integer, nullable=False),
    Column("ServiceProviderId", Integer, nullable=False),
    Column("BillingPeriodId", Integer, nullable=False),
    Column("DecidedAt", DateTime, nullable=False),
    Column("Reason", String(400), nullable=False),
    Column("MessageId", String(100), nullable=True),
    Index("ix_AirflowScheduleDecision_Period", "ServiceProviderId", "BillingPeriodId"),
)

# Jasper DB staging tables, cleared per provider before a sync (docs/architecture.md).
jasper_device_staging = Table(
    "JasperDeviceStaging",
    metadata,
    Column("ID", BigId, primary_key=True),
    Column("ICCID", String(30), nullable=False),
    Column("Status", String(30), nullable=True),
    Column("RatePlan", String(100), nullable=True),
    Column("CommunicationPlan", String(200), nullable=True),
    Column("ServiceProviderId", Integer, nullable=False),
    *_audit(),
    UniqueConstraint("ServiceProviderId", "ICCID"),
)

jasper_device_usage_staging = Table(
    "JasperDeviceUsageStaging",
    metadata,
    Column("ID", BigId, primary_key=True),
    Column("ICCID", String(30), nullable=False),
    Column("CtdDataUsage", BigInteger, nullable=False, default=0),
    Column("CtdSmsUsage", BigInteger, nullable=False, default=0),
    Column("UsageDate", DateTime, nullable=True),
    Column("DateActivated", DateTime, nullable=True),
    Column("ServiceProviderId", Integer, nullable=False),
    *_audit(),
    UniqueConstraint("ServiceProviderId", "ICCID"),
)


def _iccid_list(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("ID", BigId, primary_key=True),
        Column("ICCID", String(30), nullable=False),
        Column("ServiceProviderId", Integer, nullable=False),
        *_audit(),
    )


jasper_usage_iccids_to_process = _iccid_list("JasperDeviceUsageICCICDsToProcess")
jasper_device_export_staging = _iccid_list("JasperDeviceExportStaging")
jasper_usage_by_rate_plan_staging = _iccid_list("JasperUsageByRatePlanStaging")

STAGING_TABLES = (
    jasper_device_staging,
    jasper_usage_iccids_to_process,
    jasper_device_usage_staging,
    jasper_device_export_staging,
    jasper_usage_by_rate_plan_staging,
)


def create_schema(engine: Engine) -> None:
    """Create every table (idempotent) and seed the status lookup."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        present = {
            row[0]
            for row in conn.execute(optimization_status.select().with_only_columns(optimization_status.c.Id))
        }
        missing = [{"Id": int(s), "Name": s.name} for s in OptimizationStatus if int(s) not in present]
        if missing:
            conn.execute(optimization_status.insert(), missing)


def missing_tables(engine: Engine) -> list[str]:
    """Tables of the schema that the database lacks (a read-only check; nothing is created)."""
    present = set(inspect(engine).get_table_names())
    return sorted(name for name in metadata.tables if name not in present)


def drop_schema(engine: Engine) -> None:
    """Drop every table of the schema (tests and demo resets only)."""
    metadata.drop_all(engine)
