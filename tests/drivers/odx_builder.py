"""Build a small ODX/PDX of a vehicle-style BMS with odxtools' own classes and writer (no example
PDX ships with odxtools): identity and EOL DIDs, a write needing security level 1, two routines
and two DTCs."""

from __future__ import annotations

from pathlib import Path

from odxtools.compumethods.compucategory import CompuCategory
from odxtools.compumethods.identicalcompumethod import IdenticalCompuMethod
from odxtools.database import Database
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diagdatadictionaryspec import DiagDataDictionarySpec
from odxtools.diaglayercontainer import DiagLayerContainer
from odxtools.diaglayers.diaglayertype import DiagLayerType
from odxtools.diaglayers.ecuvariant import EcuVariant
from odxtools.diaglayers.ecuvariantraw import EcuVariantRaw
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.diagservice import DiagService
from odxtools.dtcdop import DtcDop
from odxtools.nameditemlist import NamedItemList
from odxtools.odxlink import DocType, OdxDocFragment, OdxLinkId, OdxLinkRef
from odxtools.odxtypes import DataType
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.physicaltype import PhysicalType
from odxtools.request import Request
from odxtools.response import Response, ResponseType
from odxtools.specialdata import SpecialData
from odxtools.specialdatagroup import SpecialDataGroup
from odxtools.standardlengthtype import StandardLengthType
from odxtools.text import Text
from odxtools.writepdxfile import write_pdx_file

ECU = "VBMS"
DIDS = {  # name: (DID, data type, bytes, write security level or None)
    "part_number": (0xF187, DataType.A_ASCIISTRING, 16, None),
    "sw_version": (0xF189, DataType.A_ASCIISTRING, 8, None),
    "ecu_serial": (0xF18C, DataType.A_ASCIISTRING, 16, None),
    "hw_version": (0xF191, DataType.A_ASCIISTRING, 8, None),
    "calibration_checksum": (0xF1F0, DataType.A_BYTEFIELD, 4, None),
    "eol_flag": (0xF1A0, DataType.A_UINT32, 1, 1),
    "pack_serial": (0xF1A2, DataType.A_ASCIISTRING, 20, 1),
    "eol_station": (0xF1A3, DataType.A_ASCIISTRING, 8, 0),
}
ROUTINES = {"HvContactorControl": 0xF00A, "BalancingCheck": 0x0203}
DTCS = {0x0A9B17: "Cell voltage sensing circuit open", 0x0AA116: "Isolation resistance low"}


def build_pdx(path: Path) -> Path:
    frags = [OdxDocFragment("vbms", DocType.CONTAINER)]

    def oid(text: str) -> OdxLinkId:
        return OdxLinkId(text, frags)

    def uint(bits: int) -> StandardLengthType:
        return StandardLengthType(base_data_type=DataType.A_UINT32, bit_length=bits)

    def const(name: str, value: int, position: int, bits: int = 8) -> CodedConstParameter:
        return CodedConstParameter(short_name=name, diag_coded_type=uint(bits), byte_position=position,
                                   coded_value_raw=str(value))

    dops, requests, responses, services = [], [], [], []
    for name, (did, dtype, size, level) in DIDS.items():
        physical = DataType.A_UNICODE2STRING if dtype == DataType.A_ASCIISTRING else dtype
        dops.append(DataObjectProperty(
            odx_id=oid(f"DOP.{name}"), short_name=name,
            diag_coded_type=StandardLengthType(base_data_type=dtype, bit_length=8 * size),
            physical_type=PhysicalType(base_data_type=physical),
            compu_method=IdenticalCompuMethod(category=CompuCategory.IDENTICAL, internal_type=dtype,
                                              physical_type=physical)))
        kinds = [("Read", 0x22)] + ([("Write", 0x2E)] if level is not None else [])
        for verb, sid in kinds:
            params = [const("SID", sid, 0), const("DID", did, 1, 16)]
            if verb == "Write":
                params.append(ValueParameter(short_name=name, byte_position=3, dop_ref=OdxLinkRef.from_id(oid(f"DOP.{name}"))))
            requests.append(Request(odx_id=oid(f"RQ.{verb}_{name}"), short_name=f"{verb}_{name}_rq",
                                    parameters=NamedItemList(params)))
            reply = [const("SID", sid + 0x40, 0), const("DID", did, 1, 16)]
            if verb == "Read":
                reply.append(ValueParameter(short_name=name, byte_position=3, dop_ref=OdxLinkRef.from_id(oid(f"DOP.{name}"))))
            responses.append(Response(odx_id=oid(f"PR.{verb}_{name}"), short_name=f"{verb}_{name}_pr",
                                      response_type=ResponseType.POSITIVE, parameters=NamedItemList(reply)))
            sdgs = ([SpecialDataGroup(values=[SpecialData(semantic_info="SECURITY_LEVEL", value=str(level))])]
                    if verb == "Write" and level else [])
            services.append(DiagService(odx_id=oid(f"DS.{verb}_{name}"), short_name=f"{verb}_{name}",
                                        request_ref=OdxLinkRef.from_id(oid(f"RQ.{verb}_{name}")),
                                        pos_response_refs=[OdxLinkRef.from_id(oid(f"PR.{verb}_{name}"))], sdgs=sdgs))
    for name, rid in ROUTINES.items():
        requests.append(Request(odx_id=oid(f"RQ.{name}"), short_name=f"{name}_rq", parameters=NamedItemList(
            [const("SID", 0x31, 0), const("RoutineControlType", 0x01, 1), const("RID", rid, 2, 16)])))
        responses.append(Response(odx_id=oid(f"PR.{name}"), short_name=f"{name}_pr", response_type=ResponseType.POSITIVE,
                                  parameters=NamedItemList([const("SID", 0x71, 0), const("RoutineControlType", 0x01, 1),
                                                            const("RID", rid, 2, 16)])))
        services.append(DiagService(odx_id=oid(f"DS.{name}"), short_name=name, request_ref=OdxLinkRef.from_id(oid(f"RQ.{name}")),
                                    pos_response_refs=[OdxLinkRef.from_id(oid(f"PR.{name}"))]))
    dtc_dop = DtcDop(
        odx_id=oid("DOP.dtcs"), short_name="bms_dtcs", diag_coded_type=uint(24),
        physical_type=PhysicalType(base_data_type=DataType.A_UINT32),
        compu_method=IdenticalCompuMethod(category=CompuCategory.IDENTICAL, internal_type=DataType.A_UINT32,
                                          physical_type=DataType.A_UINT32),
        dtcs_raw=[DiagnosticTroubleCode(odx_id=oid(f"DTC.{code:06X}"), short_name=f"DTC_{code:06X}",
                                        trouble_code=code, text=Text(text=text)) for code, text in DTCS.items()])
    raw = EcuVariantRaw(
        variant_type=DiagLayerType.ECU_VARIANT, odx_id=oid(ECU), short_name=ECU, long_name="Vehicle-style BMS",
        diag_data_dictionary_spec=DiagDataDictionarySpec(data_object_props=NamedItemList(dops),
                                                         dtc_dops=NamedItemList([dtc_dop])),
        diag_comms_raw=services, requests=NamedItemList(requests), positive_responses=NamedItemList(responses))
    container = DiagLayerContainer(odx_id=oid("DLC.vbms"), short_name="vbms",
                                   ecu_variants=NamedItemList([EcuVariant(diag_layer_raw=raw)]))
    database = Database()
    database.short_name = "vbms_database"
    database._diag_layer_containers = NamedItemList([container])
    database.refresh()
    write_pdx_file(str(path), database)
    return path
