"""A fixed word list for the benchmark's generated documents and queries (no external data)."""

WORDS = """
ability account action activity address advice afternoon agent agreement air airport album
alarm alert algorithm analysis animal answer apartment apple application approach archive
area argument arrival article artist aspect assignment assistant attempt attention audience
author autumn backup balance band bank basket battery beach bedroom benefit bicycle bird
birthday blanket blog board boat body book border bottle branch bread breakfast bridge
brother budget bug building bus business button cabinet cable cake calendar camera campaign
candle capital car card career carpet castle cat category ceiling chain chair challenge
channel chapter charge chart cheese chicken child chocolate church circle city class client
climate clock cloud club coach coast code coffee collection college colour comment committee
community company competition complaint computer concert condition conference connection
contract conversation cookie country course cousin customer cycle dance database daughter
deadline debate decision delivery department design desk detail device diagram dinner
direction director discount discussion disease dish doctor document dog door download
drawing dream dress driver editor education effect election email employee energy engine
engineer entry environment error event evening exam example exercise experience experiment
expert failure family farm father feature feedback festival field file film finance fish
flight floor flower focus folder food football forest format friend fruit function funeral
furniture game garage garden gate gift glass goal government grade grammar grandmother
graph group growth guest guide guitar hall hardware health hearing heart highway history
hobby holiday homework hospital hotel house idea image incident income index industry
information insect inspection instance instrument insurance interview invoice island item
jacket job journal journey judge juice kernel key keyboard kitchen knowledge laboratory
ladder lake language laptop lawyer layer leader lecture lesson letter library license light
lunch machine magazine manager map market meal measurement meat media medicine meeting
member memory menu message method metric midnight milk minute mirror mission model moment
monitor month morning mortgage mother mountain mouse movie museum music name nature network
news newspaper night note notebook novel number ocean office opinion orange order oven owner
package page painting paper parent park partner party passenger password patient payment
pencil people pepper performance permission person phone photo piano picture pipeline
pizza plan plane plant platform player poem police policy politics pool population port
potato power practice presentation president printer priority problem process product
profile profit program project promise property proposal protocol purchase quality question
queue radio rain recipe record region release report request research resource restaurant
result review river road robot roof room route salad salary sale sample sandwich schedule
school science screen script season secret security sentence server session shape shelf
ship shirt shoe shop signal singer sister skill sky sleep snow soccer software song sound
soup source speech sport spring square staff stage station status storage store story
strategy street student studio study subject success sugar summer supplier support surgery
system table task tax taxi tea teacher team television temperature tennis term test theory
ticket timeline token tool topic tourist tower town traffic train training transport tree
trip truck update user vacation valley vegetable vehicle version video village visit voice
volume wallet warning water weather website wedding week weekend window winter worker
workshop writer year yoga zone
always bright careful cheap clean cold daily early easy fast fresh friendly green happy
heavy important late local loud modern new old private public quick quiet rare red remote
safe short simple slow small strong sweet tall urgent warm weekly wide young
""".split()  # noqa: SIM905  # a word list reads and diffs best as running text

VERBS = """
add book buy call cancel change check clean cook create deliver discuss email finish fix
forget install learn like love meet move need open order pay plan prefer read remember
renew repair review schedule send share start stop study test travel update visit want
watch write
""".split()  # noqa: SIM905  # a word list reads and diffs best as running text
