import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * HAPI FHIR's R4 instance validator over every *.json file of one folder, offline: the
 * core R4 StructureDefinitions, ValueSets and CodeSystems come from the jars. Code systems
 * the jars do not hold (Brug's own, SNOMED CT, ...) are warnings, not errors.
 *
 * <p>Usage: java -cp 'libs/*:classes' Validate FOLDER. Prints one JSON object: file name
 * to its messages (severity, location, message). Used by tests/hapi_validator.py.
 */
public final class Validate {
  public static void main(String[] args) throws Exception {
    FhirContext context = FhirContext.forR4();
    UnknownCodeSystemWarningValidationSupport unknownCodeSystems =
        new UnknownCodeSystemWarningValidationSupport(context);
    unknownCodeSystems.setNonExistentCodeSystemSeverity(
        ca.uhn.fhir.context.support.IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain support =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(context),
            new CommonCodeSystemsTerminologyService(context),
            new InMemoryTerminologyServerValidationSupport(context),
            new SnapshotGeneratingValidationSupport(context),
            unknownCodeSystems);
    FhirInstanceValidator instanceValidator = new FhirInstanceValidator(support);
    FhirValidator validator = context.newValidator();
    validator.registerValidatorModule(instanceValidator);

    ObjectMapper json = new ObjectMapper();
    ObjectNode report = json.createObjectNode();
    List<Path> files;
    try (Stream<Path> listing = Files.list(Path.of(args[0]))) {
      files = listing.filter(p -> p.toString().endsWith(".json")).sorted().toList();
    }
    for (Path file : files) {
      ValidationResult result =
          validator.validateWithResult(Files.readString(file, StandardCharsets.UTF_8));
      ArrayNode messages = report.putArray(file.getFileName().toString());
      for (SingleValidationMessage message : result.getMessages()) {
        ObjectNode entry = messages.addObject();
        entry.put("severity", message.getSeverity().getCode());
        entry.put("location", message.getLocationString());
        entry.put("message", message.getMessage());
      }
    }
    System.out.println(json.writerWithDefaultPrettyPrinter().writeValueAsString(report));
  }
}
