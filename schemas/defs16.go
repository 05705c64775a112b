package schemas

// defs16 is the OCPP 1.6 JSON message table: the 28 actions of the core and optional profiles
// [OCPP 1.6 §4–§6] and the 11 of the Security extension [OCPP 1.6 Security Whitepaper ed. 2 §5].
// Fields, types, required flags, enums, lengths and formats follow the OCA 1.6 JSON schemas. It is a
// function, not a variable, so the package holds no mutable tables; Load calls it once per Set.
func defs16() []actionDef {
	const (
		cp   = SenderChargePoint
		cs   = SenderCentralSystem
		both = SenderChargePoint | SenderCentralSystem
	)

	accepted := func(name string) field { return enum(name, "Accepted", "Rejected").req() }
	idTagInfo := func(name string) field {
		return object(name,
			dateTime("expiryDate"),
			str("parentIdTag", 20),
			enum("status", "Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx").req(),
		)
	}
	chargingSchedule := func(name string) field {
		return object(name,
			integer("duration"),
			dateTime("startSchedule"),
			enum("chargingRateUnit", "A", "W").req(),
			array("chargingSchedulePeriod", object("",
				integer("startPeriod").req(),
				decimal("limit", "0.1").req(),
				integer("numberPhases"),
			)).req(),
			decimal("minChargingRate", "0.1"),
		)
	}
	chargingProfile := func(name string) field {
		return object(name,
			integer("chargingProfileId").req(),
			integer("transactionId"),
			integer("stackLevel").req(),
			enum("chargingProfilePurpose", "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile").req(),
			enum("chargingProfileKind", "Absolute", "Recurring", "Relative").req(),
			enum("recurrencyKind", "Daily", "Weekly"),
			dateTime("validFrom"),
			dateTime("validTo"),
			chargingSchedule("chargingSchedule").req(),
		)
	}
	meterValues := func(name string) field {
		return array(name, object("",
			dateTime("timestamp").req(),
			array("sampledValue", object("",
				str("value", 0).req(),
				enum("context", "Interruption.Begin", "Interruption.End", "Sample.Clock",
					"Sample.Periodic", "Transaction.Begin", "Transaction.End", "Trigger", "Other"),
				enum("format", "Raw", "SignedData"),
				enum("measurand", "Energy.Active.Export.Register", "Energy.Active.Import.Register",
					"Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
					"Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
					"Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval",
					"Power.Active.Export", "Power.Active.Import", "Power.Offered",
					"Power.Reactive.Export", "Power.Reactive.Import", "Power.Factor",
					"Current.Import", "Current.Export", "Current.Offered", "Voltage", "Frequency",
					"Temperature", "SoC", "RPM"),
				enum("phase", "L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1"),
				enum("location", "Cable", "EV", "Inlet", "Outlet", "Body"),
				// "Celcius" is the 1.6 spelling; "Celsius" was added by the errata. Both are valid.
				enum("unit", "Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar",
					"A", "V", "K", "Celcius", "Celsius", "Fahrenheit", "Percent"),
			)).req(),
		))
	}
	certificateHashData := func(name string) field {
		return object(name,
			enum("hashAlgorithm", "SHA256", "SHA384", "SHA512").req(),
			str("issuerNameHash", 128).req(),
			str("issuerKeyHash", 128).req(),
			str("serialNumber", 40).req(),
		)
	}
	certificateUse := func(name string) field {
		return enum(name, "CentralSystemRootCertificate", "ManufacturerRootCertificate").req()
	}

	return []actionDef{
		// Core profile.
		{"Authorize", cp,
			fields(str("idTag", 20).req()),
			fields(idTagInfo("idTagInfo").req())},
		{"BootNotification", cp,
			fields(
				str("chargePointVendor", 20).req(),
				str("chargePointModel", 20).req(),
				str("chargePointSerialNumber", 25),
				str("chargeBoxSerialNumber", 25),
				str("firmwareVersion", 50),
				str("iccid", 20),
				str("imsi", 20),
				str("meterType", 25),
				str("meterSerialNumber", 25),
			),
			fields(
				enum("status", "Accepted", "Pending", "Rejected").req(),
				dateTime("currentTime").req(),
				integer("interval").req(),
			)},
		{"ChangeAvailability", cs,
			fields(integer("connectorId").req(), enum("type", "Inoperative", "Operative").req()),
			fields(enum("status", "Accepted", "Rejected", "Scheduled").req())},
		{"ChangeConfiguration", cs,
			fields(str("key", 50).req(), str("value", 500).req()),
			fields(enum("status", "Accepted", "Rejected", "RebootRequired", "NotSupported").req())},
		{"ClearCache", cs,
			fields(),
			fields(accepted("status"))},
		{"DataTransfer", both,
			fields(str("vendorId", 255).req(), str("messageId", 50), str("data", 0)),
			fields(enum("status", "Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId").req(), str("data", 0))},
		{"GetConfiguration", cs,
			fields(array("key", str("", 50))),
			fields(
				array("configurationKey", object("",
					str("key", 50).req(),
					boolean("readonly").req(),
					str("value", 500),
				)),
				array("unknownKey", str("", 50)),
			)},
		{"Heartbeat", cp,
			fields(),
			fields(dateTime("currentTime").req())},
		{"MeterValues", cp,
			fields(integer("connectorId").req(), integer("transactionId"), meterValues("meterValue").req()),
			fields()},
		{"RemoteStartTransaction", cs,
			fields(integer("connectorId"), str("idTag", 20).req(), chargingProfile("chargingProfile")),
			fields(accepted("status"))},
		{"RemoteStopTransaction", cs,
			fields(integer("transactionId").req()),
			fields(accepted("status"))},
		{"Reset", cs,
			fields(enum("type", "Hard", "Soft").req()),
			fields(accepted("status"))},
		{"StartTransaction", cp,
			fields(
				integer("connectorId").req(),
				str("idTag", 20).req(),
				integer("meterStart").req(),
				integer("reservationId"),
				dateTime("timestamp").req(),
			),
			fields(idTagInfo("idTagInfo").req(), integer("transactionId").req())},
		{"StatusNotification", cp,
			fields(
				integer("connectorId").req(),
				enum("errorCode", "ConnectorLockFailure", "EVCommunicationError", "GroundFailure",
					"HighTemperature", "InternalError", "LocalListConflict", "NoError", "OtherError",
					"OverCurrentFailure", "PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure",
					"ResetFailure", "UnderVoltage", "OverVoltage", "WeakSignal").req(),
				str("info", 50),
				enum("status", "Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV",
					"Finishing", "Reserved", "Unavailable", "Faulted").req(),
				dateTime("timestamp"),
				str("vendorId", 255),
				str("vendorErrorCode", 50),
			),
			fields()},
		{"StopTransaction", cp,
			fields(
				str("idTag", 20),
				integer("meterStop").req(),
				dateTime("timestamp").req(),
				integer("transactionId").req(),
				enum("reason", "EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other",
					"PowerLoss", "Reboot", "Remote", "SoftReset", "UnlockCommand", "DeAuthorized"),
				meterValues("transactionData"),
			),
			fields(idTagInfo("idTagInfo"))},
		{"UnlockConnector", cs,
			fields(integer("connectorId").req()),
			fields(enum("status", "Unlocked", "UnlockFailed", "NotSupported").req())},

		// Firmware Management profile.
		{"DiagnosticsStatusNotification", cp,
			fields(enum("status", "Idle", "Uploaded", "UploadFailed", "Uploading").req()),
			fields()},
		{"FirmwareStatusNotification", cp,
			fields(enum("status", "Downloaded", "DownloadFailed", "Downloading", "Idle",
				"InstallationFailed", "Installing", "Installed").req()),
			fields()},
		{"GetDiagnostics", cs,
			fields(
				uri("location").req(),
				integer("retries"),
				integer("retryInterval"),
				dateTime("startTime"),
				dateTime("stopTime"),
			),
			fields(str("fileName", 255))},
		{"UpdateFirmware", cs,
			fields(
				uri("location").req(),
				integer("retries"),
				dateTime("retrieveDate").req(),
				integer("retryInterval"),
			),
			fields()},

		// Local Auth List Management profile.
		{"GetLocalListVersion", cs,
			fields(),
			fields(integer("listVersion").req())},
		{"SendLocalList", cs,
			fields(
				integer("listVersion").req(),
				array("localAuthorizationList", object("",
					str("idTag", 20).req(),
					idTagInfo("idTagInfo"),
				)),
				enum("updateType", "Differential", "Full").req(),
			),
			fields(enum("status", "Accepted", "Failed", "NotSupported", "VersionMismatch").req())},

		// Reservation profile.
		{"CancelReservation", cs,
			fields(integer("reservationId").req()),
			fields(accepted("status"))},
		{"ReserveNow", cs,
			fields(
				integer("connectorId").req(),
				dateTime("expiryDate").req(),
				str("idTag", 20).req(),
				str("parentIdTag", 20),
				integer("reservationId").req(),
			),
			fields(enum("status", "Accepted", "Faulted", "Occupied", "Rejected", "Unavailable").req())},

		// Smart Charging profile.
		{"ClearChargingProfile", cs,
			fields(
				integer("id"),
				integer("connectorId"),
				enum("chargingProfilePurpose", "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"),
				integer("stackLevel"),
			),
			fields(enum("status", "Accepted", "Unknown").req())},
		{"GetCompositeSchedule", cs,
			fields(integer("connectorId").req(), integer("duration").req(), enum("chargingRateUnit", "A", "W")),
			fields(
				accepted("status"),
				integer("connectorId"),
				dateTime("scheduleStart"),
				chargingSchedule("chargingSchedule"),
			)},
		{"SetChargingProfile", cs,
			fields(integer("connectorId").req(), chargingProfile("csChargingProfiles").req()),
			fields(enum("status", "Accepted", "Rejected", "NotSupported").req())},

		// Remote Trigger profile.
		{"TriggerMessage", cs,
			fields(
				enum("requestedMessage", "BootNotification", "DiagnosticsStatusNotification",
					"FirmwareStatusNotification", "Heartbeat", "MeterValues", "StatusNotification").req(),
				integer("connectorId"),
			),
			fields(enum("status", "Accepted", "Rejected", "NotImplemented").req())},

		// Security extension.
		{"CertificateSigned", cs,
			fields(str("certificateChain", 10000).req()),
			fields(accepted("status"))},
		{"DeleteCertificate", cs,
			fields(certificateHashData("certificateHashData").req()),
			fields(enum("status", "Accepted", "Failed", "NotFound").req())},
		{"ExtendedTriggerMessage", cs,
			fields(
				enum("requestedMessage", "BootNotification", "LogStatusNotification",
					"FirmwareStatusNotification", "Heartbeat", "MeterValues",
					"SignChargePointCertificate", "StatusNotification").req(),
				integer("connectorId"),
			),
			fields(enum("status", "Accepted", "Rejected", "NotImplemented").req())},
		{"GetInstalledCertificateIds", cs,
			fields(certificateUse("certificateType")),
			fields(
				array("certificateHashData", certificateHashData("")).min(1),
				enum("status", "Accepted", "NotFound").req(),
			)},
		{"GetLog", cs,
			fields(
				object("log",
					str("remoteLocation", 512).req(),
					dateTime("oldestTimestamp"),
					dateTime("latestTimestamp"),
				).req(),
				enum("logType", "DiagnosticsLog", "SecurityLog").req(),
				integer("requestId").req(),
				integer("retries"),
				integer("retryInterval"),
			),
			fields(enum("status", "Accepted", "Rejected", "AcceptedCanceled").req(), str("filename", 255))},
		{"InstallCertificate", cs,
			fields(certificateUse("certificateType"), str("certificate", 5500).req()),
			fields(enum("status", "Accepted", "Failed", "Rejected").req())},
		{"LogStatusNotification", cp,
			fields(
				enum("status", "BadMessage", "Idle", "NotSupportedOperation", "PermissionDenied",
					"Uploaded", "UploadFailure", "Uploading").req(),
				integer("requestId"),
			),
			fields()},
		{"SecurityEventNotification", cp,
			fields(str("type", 50).req(), dateTime("timestamp").req(), str("techInfo", 255)),
			fields()},
		{"SignCertificate", cp,
			fields(str("csr", 5500).req()),
			fields(accepted("status"))},
		{"SignedFirmwareStatusNotification", cp,
			fields(
				enum("status", "Downloaded", "DownloadFailed", "Downloading", "DownloadScheduled",
					"DownloadPaused", "Idle", "InstallationFailed", "Installing", "Installed",
					"InstallRebooting", "InstallScheduled", "InstallVerificationFailed",
					"InvalidSignature", "SignatureVerified").req(),
				integer("requestId"),
			),
			fields()},
		{"SignedUpdateFirmware", cs,
			fields(
				integer("retries"),
				integer("retryInterval"),
				integer("requestId").req(),
				object("firmware",
					str("location", 512).req(),
					dateTime("retrieveDateTime").req(),
					dateTime("installDateTime"),
					str("signingCertificate", 5500).req(),
					str("signature", 800).req(),
				).req(),
			),
			fields(enum("status", "Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate",
				"RevokedCertificate").req())},
	}
}
