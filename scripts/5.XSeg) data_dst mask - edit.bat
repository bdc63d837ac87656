@echo off
rem 5.XSeg) data_dst mask - edit: open the labelling window on data_dst/aligned: draw include
rem and exclude polygons around what is face and what covers it (hands, hair, glasses). Each
rem face's labels are saved when you leave it. Add --model-dir to see a trained mask too.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" xseg editor ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
